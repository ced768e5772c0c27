"""The notebooks run top to bottom (outputs are stripped in the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
#: Notebooks that retrain models already trained by the tests (tests/test_mitigate_training.py,
#: test_mitigate_privacy.py, test_finetune.py): minutes each, so outside the default run (`-m heavy`).
HEAVY = {"mitigation.ipynb", "privacy.ipynb"}


@pytest.mark.slow
@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.heavy) if p.name in HEAVY else p
                                  for p in NOTEBOOKS], ids=lambda p: p.name)
def test_notebook_executes(path, tmp_path, smollm2, monkeypatch):
    # reuse the demo model's conversion instead of converting again
    monkeypatch.setenv("TRUSTSLM_CACHE_DIR", str(smollm2.layout.folder.parent.parent))
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    if path.name == "quickstart.ipynb":
        assert (tmp_path / "quickstart-report" / "report.json").exists()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_outputs_are_stripped(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell.get("outputs") == [] and cell.get("execution_count") is None
