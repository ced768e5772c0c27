"""The report's JSON Schema is kept in the repository, and reports validate against it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

import trustslm
from trustslm.core.types import SCHEMA_VERSION, TrustReport, json_schema

SCHEMA_FILE = Path(trustslm.__file__).parent / "report" / "schema.json"
REGENERATE = ("python -c \"import json; from trustslm.core.types import json_schema; "
              "open('trustslm/report/schema.json','w').write(json.dumps(json_schema(), indent=2, sort_keys=True)+'\\n')\"")


def test_committed_schema_matches_the_models():
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == json.loads(json.dumps(json_schema(), sort_keys=True)), (
        f"report models changed: bump SCHEMA_VERSION if needed and regenerate with {REGENERATE}"
    )


def test_report_json_validates_and_has_the_required_fields(tmp_path):
    trustslm.audit("mock", probes=["fairness.stereotype_pairs", "toxicity.*"], out=tmp_path, progress=False, limit=5,
                   options={"toxicity.continuation": {"k": 2}})
    data = json.loads((tmp_path / "report.json").read_text())
    jsonschema.validate(data, json.loads(SCHEMA_FILE.read_text()))
    assert data["schema_version"] == SCHEMA_VERSION
    assert data["trustslm_version"] == trustslm.__version__
    for key in ("torch", "transformers", "python"):
        assert key in data["environment"]
    assert isinstance(data["model"]["files"], list)
    result = data["results"][0]
    for key in ("probe_id", "dimension", "status", "metrics", "version", "datasets", "wall_time_s"):
        assert key in result
    metric = result["metrics"][0]
    for key in ("name", "value", "higher_is_better", "n", "ci_low", "ci_high"):
        assert key in metric
    assert len(result["datasets"][0]["sha256"]) == 64
    assert "score" in data["dimensions"]["fairness"]
    assert "score" in data["overall"]
    assert "passed" in data["gate"]
    for key in ("seed", "config_hash", "wall_time_s"):
        assert key in data["run"]
    # and it reads back into the same typed report
    again = TrustReport.load(tmp_path / "report.json")
    assert again.model_dump() == TrustReport.model_validate(data).model_dump()


def test_loading_something_that_is_not_a_report(tmp_path):
    import pytest

    from trustslm.core.errors import BadInputError

    bad = tmp_path / "x.json"
    bad.write_text('{"schema_version": "0.1"}')
    with pytest.raises(BadInputError, match="schema_version"):
        TrustReport.load(bad)
