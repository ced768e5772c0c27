"""Writing a report into a model's README model card (trustslm.report.card)."""

from __future__ import annotations

import os

import pytest
from huggingface_hub import ModelCard

import trustslm
from trustslm.core.errors import BadInputError
from trustslm.core.types import GateResult, OverallScore
from trustslm.report import card as card_mod
from trustslm.report.card import MARK_END, MARK_START, SOURCE_NAME, update_model_card

PROBES = ["fairness.stereotype_pairs", "toxicity.continuation"]

FRONT = """---
license: mit
base_model: some-org/base-model
tags:
- text-generation
- small
model-index:
- name: my-model
  results:
  - task:
      type: text-generation
    dataset:
      name: HellaSwag
      type: hellaswag
    metrics:
    - type: acc_norm
      value: 0.41
    source:
      url: https://example.org/leaderboard
      name: Some Leaderboard
---
"""
BODY = ("\n# My model\n\nA tiny model. Tables | pipes <b>html</b> and trailing spaces   \n"
        "stay exactly as they are.\n")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    return trustslm.audit("mock", probes=PROBES, progress=False, limit=8, options={"toxicity.continuation": {"k": 2}},
                          cache_dir=tmp_path_factory.mktemp("cache"))


def _folder(tmp_path, text: str | bytes | None = None):
    d = tmp_path / "my-model-folder"
    d.mkdir()
    (d / "config.json").write_text("{}")
    if text is not None:
        data = text.encode() if isinstance(text, str) else text
        (d / "README.md").write_bytes(data)
    return d


def _ours(card):
    return {e.metric_type: e for e in card.data.eval_results if e.source_name == SOURCE_NAME}


def _section(text: str) -> str:
    return text[text.index(MARK_START): text.index(MARK_END) + len(MARK_END)]


def test_a_folder_without_readme_gets_a_card(report, tmp_path):
    d = _folder(tmp_path)
    path = update_model_card(d, report, report_path="trust-report/report.json")
    assert path == d / "README.md"
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n") and text.endswith(MARK_END + "\n")
    assert "## Trust report (trustslm)" in text and "trust-report/report.json" in text
    card = ModelCard.load(path)
    assert card.data.model_name == "my-model-folder"  # no name in the card: the folder's
    ours = _ours(card)
    assert set(ours) == {"trustslm_fairness", "trustslm_toxicity", "trustslm_overall"}
    for dim in ("fairness", "toxicity"):
        d_score = report.dimensions[dim]
        e = ours[f"trustslm_{dim}"]
        assert e.metric_value == round(d_score.score, 1)
        assert e.metric_args["ci_low"] == round(d_score.ci_low, 1)
        assert e.metric_args["ci_high"] == round(d_score.ci_high, 1)
        assert f"[{d_score.ci_low:.1f}, {d_score.ci_high:.1f}]" in e.metric_name
        assert e.source_url
    assert ours["trustslm_overall"].metric_value == round(report.overall.score, 1)
    assert ours["trustslm_overall"].metric_args["dimensions"] == ["fairness", "toxicity"]


def test_existing_card_survives_byte_for_byte_and_rerun_is_idempotent(report, tmp_path):
    d = _folder(tmp_path, FRONT + BODY)
    path = update_model_card(d, report)
    first = path.read_bytes()
    assert update_model_card(d, report) == path
    assert path.read_bytes() == first  # byte-identical on rerun

    text = first.decode()
    end_of_front = text.index("\n---\n", 4) + len("\n---\n")
    body = text[end_of_front:]
    # the body is the old body, one blank line, our section, a final newline
    assert body == BODY + "\n" + _section(text) + "\n"

    card = ModelCard.load(path)
    assert card.data.license == "mit" and card.data.base_model == "some-org/base-model"
    assert card.data.tags == ["text-generation", "small"]
    assert card.data.model_name == "my-model"  # the card's own name is kept
    others = [e for e in card.data.eval_results if e.source_name != SOURCE_NAME]
    assert [(e.dataset_type, e.metric_type, e.metric_value, e.source_name, e.source_url) for e in others] == [
        ("hellaswag", "acc_norm", 0.41, "Some Leaderboard", "https://example.org/leaderboard")]
    assert set(_ours(card)) == {"trustslm_fairness", "trustslm_toxicity", "trustslm_overall"}


def test_a_new_report_replaces_the_section_and_the_old_results_only(report, tmp_path):
    before, after = "\n# Model\n\nIntro.\n\n", "\n\n## Limitations\n\nText after the section.\n"
    old_section = f"{MARK_START}\nold generated text | that goes\n{MARK_END}"
    d = _folder(tmp_path, FRONT + before + old_section + after)
    update_model_card(d, report)
    # a later audit: toxicity no longer measured, a different overall score
    dims = dict(report.dimensions)
    dims["toxicity"] = dims["toxicity"].model_copy(update={"status": "not measured", "score": None, "ci_low": None,
                                                           "ci_high": None, "probes": []})
    overall = OverallScore(score=12.3, ci_low=10.0, ci_high=15.5, dimensions_measured=["fairness"],
                           dimensions_not_measured=["robustness", "privacy", "toxicity", "truthfulness"])
    newer = report.model_copy(update={"dimensions": dims, "overall": overall})
    path = update_model_card(d, newer)
    text = path.read_text(encoding="utf-8")
    assert text.count(MARK_START) == 1 and text.count(MARK_END) == 1
    assert "old generated text" not in text
    assert text.endswith(after) and (before + MARK_START) in text  # only the inside changed
    section = _section(text)
    assert "| toxicity | not measured |" in section and "| **overall** | 12.3 | [10.0, 15.5] |" in section
    card = ModelCard.load(path)
    ours = _ours(card)
    assert set(ours) == {"trustslm_fairness", "trustslm_overall"}  # no duplicates, no stale toxicity
    assert ours["trustslm_overall"].metric_value == 12.3
    assert len(card.data.eval_results) == 3  # HellaSwag + ours
    assert update_model_card(d, newer).read_text(encoding="utf-8") == text


def test_crlf_card_and_bom_keep_their_bytes(report, tmp_path):
    body = "\r\n# Windows card\r\n\r\nLine one.\r\nLine two."  # no final newline
    d = _folder(tmp_path, ("\ufeff" + "---\r\nlicense: apache-2.0\r\n---\r\n" + body).encode())
    path = update_model_card(d, report)
    data = path.read_bytes()
    text = data.decode()
    assert text.startswith("\ufeff---\r\n")
    assert (body + "\r\n\r\n" + MARK_START).encode() in data
    assert "\n" not in text.replace("\r\n", "")  # every line break is CRLF
    update_model_card(d, report)
    assert path.read_bytes() == data


def test_untrusted_report_text_is_escaped_on_one_line(report, tmp_path):
    evil = "evil | <script>alert(1)</script>\n# heading [x](javascript:y)"
    gate = GateResult(policy="/home/me/policies/release.yaml", passed=False,
                      failures=["fairness 12 < 60 | bad\nsecond line <img src=x>"])
    bad = report.model_copy(update={"model": report.model.model_copy(update={"name": evil}), "gate": gate})
    d = _folder(tmp_path)
    section = _section(update_model_card(d, bad).read_text(encoding="utf-8"))
    assert "<script>" not in section and "<img" not in section and "[x](" not in section
    assert "&lt;script&gt;" in section and "evil \\| " in section and "\\[x\\](javascript" in section
    assert "\n# heading" not in section  # kept on one line
    assert "Release gate: **failed** (policy release.yaml)" in section
    [failure] = [line for line in section.splitlines() if line.startswith("- ") and "fairness 12" in line]
    assert "second line" in failure and "\\|" in failure


@pytest.mark.parametrize("case", ["missing", "file", "front-matter", "front-list", "model-index", "symlink-out",
                                  "not-utf8", "too-large", "marker", "directory"])
def test_bad_inputs_are_one_line_errors(report, tmp_path, monkeypatch, case):
    outside = tmp_path / "outside.md"
    outside.write_text("# somebody else's file\n")
    target = _folder(tmp_path)
    readme = target / "README.md"
    if case == "missing":
        target = tmp_path / "nope"
    elif case == "file":
        target = target / "config.json"
    elif case == "front-matter":
        readme.write_text("---\nlicense: [mit\ntags: {\n---\n# Card\n")
    elif case == "front-list":
        readme.write_text("---\n- a\n- b\n---\n# Card\n")
    elif case == "model-index":
        readme.write_text("---\nmodel-index:\n- results: []\n---\n# Card\n")
    elif case == "symlink-out":
        os.symlink(outside, readme)
    elif case == "not-utf8":
        readme.write_bytes(b"# Caf\xe9 card\n")
    elif case == "too-large":
        monkeypatch.setattr(card_mod, "MAX_README_BYTES", 100)
        readme.write_text("# Card\n" + "x" * 200 + "\n")
    elif case == "marker":
        readme.write_text(f"# Card\n\n{MARK_START}\nno end marker\n")
    elif case == "directory":
        readme.mkdir()
    before = readme.read_bytes() if readme.is_file() else None
    with pytest.raises(BadInputError) as info:
        update_model_card(target, report)
    message = str(info.value)
    assert message and "\n" not in message, message
    if before is not None:
        assert readme.read_bytes() == before  # nothing written
    assert outside.read_text() == "# somebody else's file\n"


def test_symlink_inside_the_folder_is_followed(report, tmp_path):
    d = _folder(tmp_path)
    (d / "docs").mkdir()
    (d / "docs" / "card.md").write_text("# Card in docs\n")
    os.symlink("docs/card.md", d / "README.md")
    update_model_card(d, report)
    assert (d / "README.md").is_symlink()
    text = (d / "docs" / "card.md").read_text()
    assert "# Card in docs\n\n" + MARK_START in text


def test_a_card_without_front_matter_gets_metadata_and_keeps_its_text(report, tmp_path):
    body = "# Plain card\n\nNo metadata here.\n"
    d = _folder(tmp_path, body)
    text = update_model_card(d, report).read_text(encoding="utf-8")
    assert text.startswith("---\n") and text.endswith("\n---\n" + body + "\n" + _section(text) + "\n")
    card = ModelCard.load(d / "README.md")
    assert card.data.model_name == "my-model-folder" and len(card.data.eval_results) == 3
