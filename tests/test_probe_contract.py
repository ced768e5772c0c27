"""The contract between probe kinds and the engine: the requests every built-in probe builds (they
key the on-disk cache and seed the sampling, so a refactor must not move them), scorers declared
by a probe and resolved by the engine, file options marked by type, ``ProbeSkipped`` honoured in
every phase, and what each probe kind takes from a fine-tuning folder."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest
from conftest import run_cli

import trustslm
from trustslm.core.errors import TrustSLMDeprecationWarning
from trustslm.core.registry import Registry
from trustslm.core.types import ScorerInfo
from trustslm.engine.run import load_data, plan
from trustslm.models.base import CHAT_TEMPLATE
from trustslm.models.mock import ScriptedModel
from trustslm.probes.base import FileOption, ProbeContext, ProbeSkipped, marked_options
from trustslm.scorers.base import Scorer

#: sha256 of the sorted request keys each built-in probe builds with its spec's options, seed 0 and
#: ``--limit 3`` on the mock model, then on the mock with a chat template (None there: the same as
#: without); recorded on the code before the sampled-generation options and request loop were
#: shared; a probe's ``needs`` are not checked. None first: the probe is skipped on the mock (no
#: data). Left out:
#: ``robustness.perturbation_consistency`` (TextAttack makes it slow; it shares nothing changed here).
REQUEST_DIGESTS = {
    "robustness.prompt_injection": ("9a5245677f863c4f917ffd5c2c8b9b7670caacb8ef2579497ab269b72c6bb201",
                                    "401072a292b7540ff3606ef7c1c57b26a440934d5b75f05335bbad9c8849f5fe"),
    "privacy.system_prompt_leakage": ("09bd29eea06eef8547551df5f179b15159a29a7fa7297dbd0143dddce8770eb3",
                                      "a25eab8e458f55256088e9e0322391fa77ebfbcc701a37a92fc162ada5ffee70"),
    "fairness.bbq": ("397e0e8633188e006e59719c97ac153e987d7362f7d9ee448ec60e76f5e0b3be", None),
    "fairness.counterfactual_generation": ("a0fe36833c9964b4f5b6b35afb053a0810b0618c9981408d8de36481f8f04834", None),
    "fairness.stereoset": ("e6aae2a1dd9ea9e79f81db4bb14eb1d31f935f505efe513890daf23d233c10b5", None),
    "fairness.stereotype_pairs": ("942531da204b27c4a91b92aa980cc396ac43d77f35eb39efe6866cde8b516b65", None),
    "fairness.winobias": ("4729affc4f45c4a887714d4e0038643e2cc918238d1a42640681c2245c9a6ffa", None),
    "privacy.canary_exposure": (None, None),
    "privacy.extraction": (None, None),
    "privacy.membership_inference": (None, None),
    "privacy.pii_leakage": ("9d899874c011c786f9cfe9a3c3641916446d08e037b030c2db5af381738b3759", None),
    "robustness.adversarial_classification": ("b6059cfd20707694bb7645f7e165b74691073650bc26952a6eebe3cbc2d6541b", None),
    "robustness.advglue": ("e85cd55cf3b5a58f3090f81ec3451860dcbc47d8df7455704545a634deec9092", None),
    "toxicity.continuation": ("135facd6604d873f71aa6367b9c4b4a4cf2f962fce5c0de9729e3c123dff3cf9", None),
    "toxicity.instructed": ("23ac7346353a5a4ad1789b42f87b9a7165c3300ce5659cc4ac378f3122e2a1a5",
                            "a6d500c205c326c29ee6efa125797f08c1bdc6af861ccf34ef09efa666bae35a"),
    "toxicity.over_refusal": ("948f760bd98a3a422f77eacab09714676ec73d7a68c52b2f2a6babbe72b5c08d",
                              "d51413c2d9d67ec9b031c49a404874f9f449adb9459139dfaa74d39c51d07339"),
    "toxicity.targeted_groups": ("02ad633a94cd0c67213d1950d1d432d1743e5dc735d96d10ae1570dc83d1a6ee", None),
    "truthfulness.calibration": ("e96e9fa47d09acfff85842956aee471fb3f2ae3379966a3857e553b43935ee4d", None),
    "truthfulness.closed_book_qa": ("fccd1f1cb39c5e9088d5c9a8c6dd674c530f0ea1bf93763d19a687469d48129d",
                                    "eb95009b1b494f0196a41701f10c25f1310edef6aa681d9e1b96ddc5243ba413"),
    "truthfulness.self_consistency": ("d9fc5a6ed655663414361c00155848b43e2453653a236f829ff68ab44dbfecff",
                                      "fd63245472f7e2a96b5aefd1cf063e2aff81c52e8fd96f3530fb29526f887a3f"),
    "truthfulness.truthfulqa_mc": ("681f8c589e56aaae0522c505963eabea90cf75469300023f482f060be92b3875", None),
    "truthfulness.truthfulqa_gen": ("21fb0850d09fbedfcab5f0fc9bdf73f803d53219bd0052aba7a86d4fa19efcd9", None),
}


def _request_digest(probe_id: str, *, chat: bool) -> str | None:
    registry = Registry()
    model = ScriptedModel()
    capabilities = model.capabilities | {CHAT_TEMPLATE} if chat else model.capabilities
    ctx = ProbeContext(seed=0, limit=3, capabilities=frozenset(capabilities), registry=registry, progress=False,
                       split_tokens=model.split_tokens)
    # the embedder changes no request, and loading it is slow
    [p] = plan(registry, [probe_id], overrides={"truthfulness.self_consistency": {"embedder": "none"}})
    load_data([p], ctx)
    if p.status != "ok":  # its needs are not checked: the requests are what is compared
        return None
    try:
        p.probe.check(ctx)
        assert p.data is not None
        requests = p.probe.requests(p.data, ctx)
    except ProbeSkipped:
        return None
    keys = sorted(r.key() for r in requests)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


@pytest.mark.parametrize("probe_id", sorted(REQUEST_DIGESTS))
def test_every_probe_builds_the_requests_it_built_before(probe_id):
    plain, chat = REQUEST_DIGESTS[probe_id]
    assert _request_digest(probe_id, chat=False) == plain
    assert _request_digest(probe_id, chat=True) == (chat or plain)


# -- a plugin written by the tests: probe kinds that skip in score() and take canaries ------------

PLUGIN = '''
from pathlib import Path

from trustslm.models.base import GENERATE, GenerateRequest
from trustslm.probes.base import (LoadedData, MetricDef, OptionalDataPath, Probe, ProbeOptions, ProbeOutput,
                                  ProbeSkipped)

SPECS = Path(__file__).parent / "specs"
METRICS = (MetricDef(name="rate", bounds=(0.0, 1.0), column="x", higher_is_better=True, description="A test metric."),)


class SkipInScoreProbe(Probe):
    kind = "skip_in_score"
    needs = frozenset({GENERATE})
    metrics = METRICS

    def load(self, ctx):
        return LoadedData(items=[{"prompt": "Hello"}], datasets=[])

    def requests(self, data, ctx):
        return [GenerateRequest(prompt="Hello", max_new_tokens=4)]

    def score(self, data, results, ctx):
        raise ProbeSkipped("none of its items can be scored on this model")


class TakesCanariesOptions(ProbeOptions):
    secrets: OptionalDataPath = None


class TakesCanariesProbe(Probe):
    kind = "takes_canaries"
    needs = frozenset({GENERATE})
    Options = TakesCanariesOptions
    training_inputs = {"canaries": "secrets"}
    metrics = METRICS

    def load(self, ctx):
        if not self.options.secrets:
            raise ProbeSkipped("no canaries")
        return LoadedData(items=[], datasets=[])

    def requests(self, data, ctx):
        return []

    def score(self, data, results, ctx):
        import pandas as pd

        return ProbeOutput(units=pd.DataFrame({"x": [1.0, 0.0, 1.0]}))
'''

ENTRY_POINTS = """[trustslm.probes]
contract = contract_plugin:SPECS

[trustslm.probe_kinds]
skip_in_score = contract_plugin:SkipInScoreProbe
takes_canaries = contract_plugin:TakesCanariesProbe
"""


@pytest.fixture
def plugin(tmp_path):
    """A plugin package in a folder for PYTHONPATH (for the CLI) and a registry holding it."""
    import importlib
    import sys

    root = tmp_path / "plugin"
    package = root / "contract_plugin"
    for kind in ("skip_in_score", "takes_canaries"):
        spec = package / "specs" / kind
        spec.mkdir(parents=True)
        (spec / "spec.yaml").write_text(f'id: robustness.{kind}\nkind: {kind}\ndimension: robustness\nversion: "1"\n'
                                        "summary: A test fixture.\nscoring:\n  rate: {best: 1.0, worst: 0.0}\n")
        (spec / "README.md").write_text(f"# robustness.{kind}\n\nA test fixture.\n")
    (package / "__init__.py").write_text(PLUGIN)
    dist = root / "contract_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: contract-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    sys.path.insert(0, str(root))
    sys.modules.pop("contract_plugin", None)
    importlib.invalidate_caches()
    groups = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.scorers", "trustslm.models")
    eps = {g: [ep for ep in entry_points(group=g) if not ep.value.startswith("contract_plugin")] for g in groups}
    for line in ENTRY_POINTS.splitlines():
        if line.startswith("["):
            group = line.strip("[]")
        elif "=" in line:
            name, value = (x.strip() for x in line.split("="))
            eps[group].append(EntryPoint(name=name, value=value, group=group))
    yield {"root": root, "registry": Registry(eps)}
    sys.path.remove(str(root))
    sys.modules.pop("contract_plugin", None)


def test_probe_skipped_in_score_is_skipped_not_an_error_and_the_audit_exits_0(plugin, tmp_path):
    report = trustslm.audit("mock", probes=["robustness.skip_in_score"], registry=plugin["registry"], progress=False)
    result = report.result("robustness.skip_in_score")
    assert (result.status, result.reason) == ("skipped", "none of its items can be scored on this model")

    proc = run_cli("audit", "mock", "--probes", "robustness.skip_in_score", "--out", str(tmp_path / "o"),
                   "--no-progress", env={"PYTHONPATH": str(plugin["root"])})
    assert proc.returncode == 0, proc.stderr
    [saved] = json.loads((tmp_path / "o" / "report.json").read_text())["results"]
    assert saved["status"] == "skipped" and "can be scored" in saved["reason"]


# -- scorers: declared by the probe, loaded by the engine with one rule ----------------------------

class CountingScorer(Scorer):
    name = "counting"
    loads = 0

    def load(self):
        CountingScorer.loads += 1

    def score(self, texts):
        return [0.0 for _ in texts]

    def info(self):
        return ScorerInfo(name="counting", version="1")


class NeverScorer(Scorer):
    name = "never"

    def unavailable(self):
        return "not installed here"

    def load(self):
        raise AssertionError("never loaded")

    def score(self, texts):
        raise AssertionError("never called")

    def info(self):
        raise AssertionError("never called")


def _scorer_registry() -> Registry:
    groups = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.models")
    eps = {g: list(entry_points(group=g)) for g in groups}
    eps["trustslm.scorers"] = [EntryPoint(name=n, value=f"test_probe_contract:{v}", group="trustslm.scorers")
                               for n, v in (("counting", "CountingScorer"), ("detoxify", "NeverScorer"),
                                            ("profanity-check", "NeverScorer"))]
    return Registry(eps)


TOXICITY_SCORED = ["toxicity.continuation", "toxicity.targeted_groups", "fairness.counterfactual_generation"]
ONE_SAMPLE = {pid: {"k": 1} for pid in TOXICITY_SCORED}


def test_the_engine_loads_each_named_scorer_once_for_every_probe_that_names_it():
    CountingScorer.loads = 0
    report = trustslm.audit("mock", probes=TOXICITY_SCORED, registry=_scorer_registry(), progress=False, limit=2,
                            scorer="counting", options=ONE_SAMPLE)
    assert {r.probe_id: (r.status, r.scorer.name) for r in report.results} == \
        dict.fromkeys(TOXICITY_SCORED, ("ok", "counting"))
    assert CountingScorer.loads == 1


def test_auto_without_a_scorer_skips_a_required_one_and_leaves_an_optional_one_out():
    report = trustslm.audit("mock", probes=TOXICITY_SCORED, registry=_scorer_registry(), progress=False, limit=2,
                            options=ONE_SAMPLE)
    for pid in ("toxicity.continuation", "toxicity.targeted_groups"):  # they can't run without one
        result = report.result(pid)
        assert result.status == "skipped" and "no toxicity scorer is available" in result.reason
        assert "detoxify not used: not installed here" in result.reason
    counterfactual = report.result("fairness.counterfactual_generation")  # sentiment still runs
    assert counterfactual.status == "ok" and counterfactual.scorer is None
    names = {m.name for m in counterfactual.metrics}
    assert "negative_rate_dp_difference" in names and not any(n.startswith("toxic") for n in names)


def test_the_toxicity_scorer_option_is_scorer_and_its_former_name_warns():
    pid = "fairness.counterfactual_generation"
    with pytest.warns(TrustSLMDeprecationWarning, match=f"option {pid}.toxicity_scorer is deprecated"):
        [p] = plan(Registry(), [pid], config={pid: {"toxicity_scorer": "from-config"}})
    assert p.probe.options.scorer == "from-config"
    with pytest.warns(TrustSLMDeprecationWarning):  # the current name wins in one layer; a higher layer wins
        [p] = plan(Registry(), [pid], config={pid: {"toxicity_scorer": "old", "scorer": "new"}})
        assert p.probe.options.scorer == "new"
        [p] = plan(Registry(), [pid], config={pid: {"scorer": "config"}}, overrides={pid: {"toxicity_scorer": "set"}})
        assert p.probe.options.scorer == "set"
    assert "toxicity_scorer" not in p.probe.options.model_dump()


# -- file options marked by their type ---------------------------------------------------------------

def test_file_options_are_known_by_their_type():
    registry = Registry()
    files = {kind: sorted(marked_options(registry.probe_kind(kind).Options, FileOption))
             for kind in ("instructed_toxicity", "membership_inference", "pii_leakage", "canary_exposure")}
    assert files == {"instructed_toxicity": ["data", "wrappers"], "membership_inference": ["members", "non_members"],
                     "pii_leakage": ["data", "known_pii"], "canary_exposure": ["data", "training_record"]}
    for spec in registry.select(None):
        assert "data" in marked_options(registry.probe_kind(spec.kind).Options, FileOption) or \
            "data" not in registry.probe_kind(spec.kind).Options.model_fields


def test_a_plugins_file_option_in_a_config_file_is_read_from_the_config_folder(plugin, tmp_path):
    pid = "robustness.takes_canaries"
    [p] = plan(plugin["registry"], [pid], config={pid: {"secrets": "canaries.jsonl"}}, config_dir=tmp_path)
    assert p.probe.options.secrets == str(tmp_path / "canaries.jsonl")


# -- what a probe kind takes from a fine-tuning folder -----------------------------------------------

def _finetune_folder(root: Path, base: Path) -> Path:
    """A folder as ``trustslm finetune`` leaves it, for what matters here: its record and files (the
    record is validated strictly, and its base is offered only when it still has the recorded hash)."""
    from trustslm.core.hashing import sha256_file
    from trustslm.train.record import TrainingRecord
    from trustslm.workflows.load import load_model

    folder = root / "model"
    folder.mkdir()
    for name in ("canaries.jsonl", "members.txt", "non_members.txt"):
        (folder / name).write_text("x\n")
    notes = root / "notes.txt"
    notes.write_text("x\n")
    TrainingRecord(
        trustslm_version="0", base_model={"spec": str(base), "name": "base", "hash": load_model(str(base)).info().hash},
        data={"path": str(notes), "sha256": sha256_file(notes), "texts": 1, "training_sequences": 1},
        config={}, dp=False, sample_rate=1.0, steps=1, trainable_parameters=1, wall_time_s=0.0, step_time_s=0.0,
        canary_file="canaries.jsonl", members_file="members.txt", non_members_file="non_members.txt").save(folder)
    return folder


def test_a_fine_tuning_folder_sets_what_every_selected_kind_takes(plugin, tmp_path, tiny_gpt2):
    from trustslm.workflows.discover import discover_options

    folder = _finetune_folder(tmp_path, tiny_gpt2)
    found = discover_options(str(folder), registry=plugin["registry"], probes=["privacy.*", "robustness.*"])
    members = str((folder / "members.txt").resolve())
    assert found == {
        "privacy.canary_exposure": {"data": str((folder / "canaries.jsonl").resolve()),
                                    "training_record": str(folder / "training_record.json")},
        "privacy.membership_inference": {"members": members, "non_members": str((folder / "non_members.txt").resolve()),
                                         "reference_model": str(tiny_gpt2.resolve())},
        "privacy.extraction": {"data": members},
        "privacy.pii_leakage": {"known_pii": members},
        "robustness.takes_canaries": {"secrets": str((folder / "canaries.jsonl").resolve())},
    }
    assert discover_options(str(folder), registry=plugin["registry"], probes=["privacy.extraction"]) == \
        {"privacy.extraction": {"data": members}}  # selected probes only
    assert discover_options("mock", registry=plugin["registry"]) == {}


def test_the_canaries_flag_sets_the_option_of_every_selected_kind_that_takes_canaries(plugin, tmp_path):
    canaries = tmp_path / "canaries.jsonl"
    canaries.write_text("{}\n")
    proc = run_cli("audit", "mock", "--probes", "robustness.takes_canaries", "--canaries", str(canaries),
                   "--out", str(tmp_path / "o"), "--no-progress", env={"PYTHONPATH": str(plugin["root"])})
    assert proc.returncode == 0, proc.stderr
    [saved] = json.loads((tmp_path / "o" / "report.json").read_text())["results"]
    assert saved["status"] == "ok" and saved["options"]["secrets"] == str(canaries)


def test_no_probe_is_named_in_the_cli_the_api_or_the_audit_workflows():
    registry = Registry()
    ids = set(registry.specs) | set(registry.aliases)
    root = Path(trustslm.__file__).parent
    for module in ("cli/main.py", "api.py", "workflows/audit.py", "workflows/discover.py", "workflows/mitigate.py"):
        text = (root / module).read_text(encoding="utf-8")
        assert not [pid for pid in ids if pid in text], module
