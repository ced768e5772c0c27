"""toxicity.targeted_groups: hand-computed rates and gaps, its data formats and bad input."""

from __future__ import annotations

import json
from importlib.metadata import EntryPoint, entry_points

import pytest
from conftest import SHARED_DATASETS, assert_one_line_error, run_cli
from tolerances import decimals

import trustslm
from trustslm.core.registry import Registry
from trustslm.core.types import ScorerInfo
from trustslm.models.mock import ScriptedModel
from trustslm.scorers.base import Scorer


class KeywordScorer(Scorer):
    """1.0 for a text that says "hateful", else 0.1: the probe's arithmetic, not a classifier's."""

    name = "keyword"

    def load(self):
        pass

    def score(self, texts):
        return [1.0 if "hateful" in t else 0.1 for t in texts]

    def info(self):
        return ScorerInfo(name="keyword", version="test")


def _registry() -> Registry:
    groups = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.models")
    eps = {g: list(entry_points(group=g)) for g in groups}
    eps["trustslm.scorers"] = [EntryPoint(name="keyword", value="test_toxicity_probes:KeywordScorer",
                                          group="trustslm.scorers")]
    return Registry(eps)


def _rows(prompts):
    return "".join(json.dumps({"id": f"p{n}", "group": g, "prompt_type": t, "prompt": f"- about {g} ({t} {n})\n-"}) + "\n"
                   for n, (g, t) in enumerate(prompts))


def test_targeted_groups_rates_and_gap_hand_computed(tmp_path):
    # groups a and b, two prompt types; the model is hateful on a's "hate" prompts only, and on one
    # of b's two "neutral" prompts
    data = tmp_path / "tg.jsonl"
    data.write_text(_rows([("a", "hate"), ("a", "hate"), ("b", "hate"), ("b", "hate"),
                           ("a", "neutral"), ("a", "neutral"), ("b", "neutral"), ("b", "neutral")]))
    script = {"generate": [{"match": "about a (hate", "response": " hateful words"},
                           {"match": "about b (neutral 6)", "response": " hateful words"},
                           {"match": "", "response": " kind words"}]}
    report = trustslm.audit(ScriptedModel(script), probes=["toxicity.targeted_groups"], progress=False,
                            registry=_registry(), out=tmp_path / "o",
                            options={"toxicity.targeted_groups": {"data": str(data), "k": 3, "scorer": "keyword"}})
    r = report.result("toxicity.targeted_groups")
    assert r.status == "ok" and r.scorer.name == "keyword"
    assert r.metric("toxic_rate", "group=a").value == pytest.approx(0.5)  # 6 of 12
    assert r.metric("toxic_rate", "group=b").value == pytest.approx(0.25)  # 3 of 12
    assert r.metric("toxic_rate").value == pytest.approx(9 / 24)
    # within "hate": 1.0 vs 0.0; within "neutral": 0.0 vs 0.5; the gap is their mean
    assert r.metric("toxic_rate_dp_difference", "prompt_type=hate").value == pytest.approx(1.0)
    assert r.metric("toxic_rate_dp_difference", "prompt_type=neutral").value == pytest.approx(0.5)
    assert r.metric("toxic_rate_dp_difference").value == pytest.approx(0.75)
    assert r.metric("toxic_rate_dp_ratio").value == pytest.approx(0.0)
    assert r.metric("toxic_rate_by_type", "prompt_type=hate").value == pytest.approx(0.5)
    assert r.metric("mean_toxicity", "group=a").value == pytest.approx((6 * 1.0 + 6 * 0.1) / 12)
    m = r.metric("toxic_rate_dp_difference")
    assert m.ci_low <= m.value <= m.ci_high
    # scores keep 4 decimals
    assert r.score.score == pytest.approx((100 * (1 - 9 / 24) + 100 * (1 - 0.75)) / 2, abs=decimals(4))
    html = (tmp_path / "o" / "report.html").read_text()
    assert 'class="breakdown"' in html


def test_targeted_groups_limit_is_per_group_and_type(tmp_path):
    data = tmp_path / "tg.jsonl"
    data.write_text(_rows([("a", "hate")] * 3 + [("a", "neutral")] * 3 + [("b", "hate")] * 3))
    report = trustslm.audit(ScriptedModel({"generate": [{"match": "", "response": " ok"}]}),
                            probes=["toxicity.targeted_groups"], progress=False, registry=_registry(), limit=2,
                            options={"toxicity.targeted_groups": {"data": str(data), "k": 1, "scorer": "keyword"}})
    assert report.result("toxicity.targeted_groups").datasets[0].n_used == 6


def test_toxigen_files_and_folder(tmp_path):
    from trustslm.data.targeted import load_targeted

    (tmp_path / "hate_women_1k.txt").write_text("- one\\n- two\\n-\n- three\\n-\n")
    (tmp_path / "neutral_asian_1k.txt").write_text("- four\\n-\n")
    items, fmt = load_targeted(tmp_path)
    assert fmt == "toxigen" and len(items) == 3
    assert items[0] == {"id": "hate_women:0", "group": "women", "prompt_type": "hate", "prompt": "- one\n- two\n-"}
    assert {i["group"] for i in items} == {"women", "asian"}
    if (SHARED_DATASETS / "toxigen").exists():
        shared, _ = load_targeted(SHARED_DATASETS / "toxigen" / "prompts")
        assert len(shared) == 31_000 and len({i["group"] for i in shared}) == 16


@pytest.mark.parametrize("content, name, needle", [
    ('{"group": "a", "prompt": "x"}\n', "tg.jsonl", "missing field(s)"),
    ("", "tg.jsonl", "empty"),
    ("- a\\n-\n", "hateful_women.txt", None),
])
def test_bad_targeted_files_are_one_line_errors(tmp_path, content, name, needle):
    f = tmp_path / name
    f.write_text(content)
    proc = run_cli("audit", "mock", "--probes", "toxicity.targeted_groups", "--out", str(tmp_path / "o"),
                   "--set", f"toxicity.targeted_groups.data={f}", "--set", "toxicity.targeted_groups.scorer=profanity-check")
    assert_one_line_error(proc, contains=needle)


def test_quick_profile_takes_the_specs_quick_options_under_the_users():
    from trustslm.engine.run import plan

    registry = Registry()
    full = {p.probe.spec.id: p.probe.options for p in plan(registry, None)}
    quick = {p.probe.spec.id: p.probe.options for p in plan(registry, None, quick=True)}  # every quick block is valid
    assert (full["toxicity.continuation"].k, quick["toxicity.continuation"].k) == (25, 5)
    assert quick["toxicity.targeted_groups"].k < full["toxicity.targeted_groups"].k
    mine = plan(registry, ["toxicity.continuation"], quick=True, overrides={"toxicity.continuation": {"k": 7}})
    assert mine[0].probe.options.k == 7  # --set wins over --quick
    report = trustslm.audit("mock", probes=["toxicity.targeted_groups"], quick=True, limit=1, progress=False,
                            registry=_registry(), options={"toxicity.targeted_groups": {"scorer": "keyword"}})
    assert report.run.profile == "quick" and report.run.config["toxicity.targeted_groups"]["k"] == 2
