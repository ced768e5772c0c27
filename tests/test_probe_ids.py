"""Probe ids are DIMENSION.NAME, and the ids of trustslm 0.1 (``bias.*``, ``hallucination.*``)
still work, each with a one-line deprecation notice: in --probes (ids and globs), in probe options,
in policies and in baseline reports."""

from __future__ import annotations

import warnings

import pytest
from conftest import run_cli

import trustslm
from trustslm.core.errors import TrustSLMDeprecationWarning
from trustslm.core.registry import Registry

RENAMED = {"bias.bbq": "fairness.bbq", "bias.stereoset": "fairness.stereoset",
           "bias.stereotype_pairs": "fairness.stereotype_pairs", "bias.winobias": "fairness.winobias",
           "hallucination.calibration": "truthfulness.calibration",
           "hallucination.closed_book_qa": "truthfulness.closed_book_qa",
           "hallucination.self_consistency": "truthfulness.self_consistency",
           "hallucination.truthfulqa_mc": "truthfulness.truthfulqa_mc"}


def test_every_id_names_its_dimension_and_its_folder():
    for spec in Registry().specs.values():
        dimension, name = spec.id.split(".", 1)
        assert dimension == spec.dimension
        folder = spec.spec_path.replace("\\", "/").split("/")[-3:-1]
        assert folder == [dimension, name], spec.spec_path


def test_the_former_ids_are_aliases():
    assert Registry().aliases == RENAMED


def test_a_spec_whose_id_does_not_name_its_dimension_is_refused(tmp_path):
    from trustslm.core.errors import BadInputError
    from trustslm.core.specs import load_spec_file

    path = tmp_path / "spec.yaml"
    path.write_text("id: bias.x\nkind: likelihood_pairs\ndimension: fairness\nversion: 1\nsummary: s\nscoring: {}\n")
    with pytest.raises(BadInputError, match="must start with its dimension"):
        load_spec_file(path, provider="t")


def test_a_former_id_selects_the_probe_with_one_notice():
    registry = Registry()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chosen = registry.select(["bias.stereotype_pairs", "bias.stereotype_pairs", "truthfulness.*"])
    assert [s.id for s in chosen] == ["fairness.stereotype_pairs", "truthfulness.calibration",
                                      "truthfulness.closed_book_qa", "truthfulness.self_consistency",
                                      "truthfulness.truthfulqa_gen", "truthfulness.truthfulqa_mc"]
    notices = [str(w.message) for w in caught if issubclass(w.category, TrustSLMDeprecationWarning)]
    assert notices == ["probe id 'bias.stereotype_pairs' is deprecated; it is now 'fairness.stereotype_pairs'"]


def test_a_former_glob_selects_the_renamed_probes():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrustSLMDeprecationWarning)
        chosen = Registry().select(["bias.*"])
    assert [s.id for s in chosen] == ["fairness.bbq", "fairness.stereoset", "fairness.stereotype_pairs",
                                      "fairness.winobias"]


def test_options_given_under_a_former_id_reach_the_probe():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrustSLMDeprecationWarning)
        report = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], progress=False, use_cache=False,
                                options={"bias.stereotype_pairs": {"limit": 3}})
    (result,) = report.results
    assert result.probe_id == "fairness.stereotype_pairs" and result.options["limit"] == 3


def test_cli_prints_the_notice_as_one_line_and_runs(tmp_path):
    proc = run_cli("audit", "mock", "--probes", "bias.winobias", "--limit", "4", "--no-progress",
                   "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "trustslm: warning: probe id 'bias.winobias' is deprecated; it is now 'fairness.winobias'"]
    assert trustslm.load_report(tmp_path / "out").results[0].probe_id == "fairness.winobias"


def test_a_baseline_and_a_policy_with_former_ids_still_gate(tmp_path):
    """A report written before the rename (its probe ids rewritten to the former ones) compares
    with a new one, and a policy naming a former id finds its metric."""
    from trustslm.core.registry import Registry
    from trustslm.gate.policy import Policy

    new = trustslm.audit("mock", probes=["fairness.stereotype_pairs"], progress=False, use_cache=False, limit=20)
    old = new.model_copy(update={"results": [r.model_copy(update={"probe_id": "bias.stereotype_pairs"})
                                             for r in new.results]})
    old._units = {"bias.stereotype_pairs": new.units["fairness.stereotype_pairs"]}
    old._samples = [{**s, "probe_id": "bias.stereotype_pairs"} for s in new.samples]
    policy = Policy.model_validate({"metrics": {"bias.stereotype_pairs.pct_stereotype": {"max": 2.0}},
                                    "regressions": {"metrics": {"bias.stereotype_pairs.pct_stereotype": 0.0}}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrustSLMDeprecationWarning)
        gated = trustslm.evaluate_gate(new, policy=policy, baseline=old, registry=Registry())
    by_target = {r.target: r for r in gated.gate.rules}
    threshold = by_target["fairness.stereotype_pairs.pct_stereotype"]
    assert threshold.actual is not None and threshold.passed
    regression = [r for r in gated.gate.rules if r.op == "regression"
                  and r.target == "fairness.stereotype_pairs.pct_stereotype"]
    assert regression and regression[0].baseline is not None and regression[0].regression == pytest.approx(0.0)
    assert gated.gate.passed, gated.gate.failures
    assert old.results[0].probe_id == "bias.stereotype_pairs"  # the baseline given is not changed
