"""How strongly the CDA scenario's plain fine-tune learns the stereotype, by learning rate.

The scenario (``trustslm.testing.scenarios.cda_scenario``) must give a model that prefers the
stereotyped sentence (pct_stereotype >= 0.8) for the CDA test to mean anything. Prints, per
learning rate, ``fairness.stereotype_pairs``' pct_stereotype with its 95% interval::

    .venv/bin/python bench/cda_scenario_lr.py 5e-3 3e-3

Measured 2026-12-06 (transformers 5.25.0, torch 2.13.0, 2 cores): 5e-3 -> 0.65 [0.517, 0.767],
3e-3 -> 0.883 [0.783, 0.95]; the scenario uses 3e-3.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

import trustslm
from trustslm.testing.scenarios import cda_scenario


def main(rates: list[float]) -> None:
    torch.set_num_threads(1)
    for lr in rates:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            scenario = cda_scenario(root / "scenario")
            settings = {**scenario.settings, "lr": lr}
            trustslm.finetune(str(scenario.base), scenario.data, out=root / "plain", progress=False, **settings)
            report = trustslm.audit(str(root / "plain"), probes=["fairness.stereotype_pairs"], progress=False,
                                    options=scenario.probe_options, use_cache=False)
            m = report.results[0].metric("pct_stereotype")
            print(f"lr {lr:g}: pct_stereotype {m.value:.3f} [{m.ci_low:.3f}, {m.ci_high:.3f}]", flush=True)


if __name__ == "__main__":
    main([float(x) for x in sys.argv[1:]] or [5e-3, 3e-3])
