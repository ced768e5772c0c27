"""A non-editable install (a built wheel) carries the probe specs and datasets and works."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    (path,) = out.glob("trustslm-*.whl")
    return path


def test_wheel_contains_specs_cards_and_datasets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "trustslm/_resources/probes/fairness/stereotype_pairs/spec.yaml",
        "trustslm/_resources/probes/fairness/stereotype_pairs/README.md",
        "trustslm/_resources/probes/toxicity/continuation/spec.yaml",
        "trustslm/_resources/datasets/stereotype_pairs.jsonl",
        "trustslm/_resources/datasets/toxicity_prompts.jsonl",
        "trustslm/report/schema.json",
    ):
        assert required in names, required
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[trustslm.probes]" in text and "likelihood_pairs" in text


def test_installed_wheel_runs_an_audit(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = (
        "import trustslm, json; from trustslm.core.resources import probes_dir, datasets_dir;"
        "r = trustslm.audit('mock', probes=['fairness.stereotype_pairs', 'toxicity.continuation'], limit=3, options={'toxicity.continuation': {'k': 1}}, progress=False);"
        "print(json.dumps([trustslm.__file__, str(probes_dir()), str(datasets_dir()), [x.status for x in r.results]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    import json

    module, probes, datasets, statuses = json.loads(proc.stdout.strip().splitlines()[-1])
    assert module.startswith(str(target))
    assert probes.startswith(str(target)) and "_resources" in probes
    assert datasets.startswith(str(target))
    assert statuses == ["ok", "ok"]
