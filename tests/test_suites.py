"""Suites (--suite), stratified samples of a benchmark, and the per-probe speed figures."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED_DATASETS, assert_one_line_error, run_cli

from trustslm import api
from trustslm.core.errors import BadInputError, DataError, UnknownNameError
from trustslm.core.registry import Registry
from trustslm.data.sampling import allocate, stratified_sample
from trustslm.engine import run as engine
from trustslm.engine.suites import load_suite
from trustslm.workflows.audit import audit as run_audit
from trustslm.workflows.utility import utility_registry

needs_shared = pytest.mark.skipif(not SHARED_DATASETS.is_dir(), reason="../shared/datasets is not beside the repository")


# -- stratified samples ---------------------------------------------------------------------------
def test_allocation_by_largest_remainder_hand_computed():
    # exact shares 2.5, 1.5, 1.0: floors 2, 1, 1; the one left goes to the first largest remainder
    assert allocate([5, 3, 2], 5) == [3, 1, 1]
    assert allocate([1, 1, 1, 1], 2) == [1, 1, 0, 0]
    assert allocate([10, 90], 10) == [1, 9]
    assert sum(allocate([7, 13, 29, 1], 17)) == 17


def test_stratified_sample_keeps_shares_order_and_seed():
    items = [{"id": i, "g": "a" if i < 60 else "b"} for i in range(100)]
    kept, how = stratified_sample(items, 10, by=["g"], seed=0)
    assert [x["g"] for x in kept].count("a") == 6 and len(kept) == 10
    assert [x["id"] for x in kept] == sorted(x["id"] for x in kept)  # the data's order
    assert how == "stratified by g (2 strata) sample of 10 of 100 items, seed 0"
    assert stratified_sample(items, 10, by=["g"], seed=0)[0] == kept
    assert stratified_sample(items, 10, by=["g"], seed=1)[0] != kept
    assert stratified_sample(items, 100, by=["g"], seed=0) == (items, None)  # all of them: not a sample
    with pytest.raises(BadInputError, match="no field 'h'"):
        stratified_sample(items, 5, by=["h"], seed=0)


# -- suites ---------------------------------------------------------------------------------------
def test_builtin_suites_load_and_name_known_probes():
    registry = Registry()
    smoke, standard = load_suite("smoke"), load_suite("standard")
    assert smoke.probes is None and smoke.label == "smoke@2"
    assert standard.probes and all(registry.spec(p).id == p for p in standard.probes)
    assert {p.split(".")[0] for p in standard.probes} == {"fairness", "privacy", "robustness", "toxicity",
                                                          "truthfulness"}
    rows = {r["name"]: r for r in api.list_suites(registry)}
    assert set(rows) >= {"smoke", "standard"}
    # smoke: every probe but the one whose metric needs the benchmark's own answers
    assert smoke.exclude == ("truthfulness.truthfulqa_gen",)
    assert rows["smoke"]["probes"] == sorted(set(registry.specs) - {"truthfulness.truthfulqa_gen"})
    assert "truthfulness.truthfulqa_gen" in standard.probes


def test_a_star_suite_leaves_out_its_exclusions_and_probes_cannot_choose_them(tmp_path):
    registry = Registry()
    smoke = load_suite("smoke")
    planned = [p.probe.id for p in engine.plan(registry, None, suite=smoke)]
    assert planned == sorted(set(registry.specs) - {"truthfulness.truthfulqa_gen"})
    assert [p.probe.id for p in engine.plan(registry, ["truthfulness.*"], suite=smoke)] == [
        "truthfulness.calibration", "truthfulness.closed_book_qa", "truthfulness.self_consistency",
        "truthfulness.truthfulqa_mc"]
    with pytest.raises(BadInputError, match="selects none of suite smoke"):
        engine.plan(registry, ["truthfulness.truthfulqa_gen"], suite=smoke)
    proc = run_cli("audit", "mock", "--probes", "truthfulness.truthfulqa_gen", "--out", str(tmp_path / "out"),
                   "--no-progress")
    assert_one_line_error(proc, 2, "--suite standard runs them")
    own = tmp_path / "s.yaml"
    own.write_text('name: x\nversion: 1\nprobes: "*"\nexclude: [hallucination.truthfulqa_mc]\n')  # an alias
    assert "truthfulness.truthfulqa_mc" not in [p.probe.id for p in engine.plan(registry, None, suite=load_suite(own))]
    # an id this registry doesn't know leaves nothing out: smoke also serves the utility probes' registry
    utility = utility_registry()
    assert engine.plan(utility, None, suite=smoke) and "truthfulness.truthfulqa_gen" not in utility.specs
    # options under a star suite: given to the probes they name, under the user's; unknown ids ignored
    assert set(smoke.options) <= set(registry.specs)  # the shipped suite names no probe that isn't there
    own.write_text('name: x\nversion: 1\nprobes: "*"\noptions: {fairness.bbq: {limit: 3}, acme.nope: {k: 1}}\n')
    options = {p.probe.id: p.probe.options for p in engine.plan(registry, ["fairness.*"], suite=load_suite(own))}
    assert options["fairness.bbq"].limit == 3 and options["fairness.winobias"].limit is None
    options = {p.probe.id: p.probe.options for p in engine.plan(registry, ["fairness.bbq"], suite=load_suite(own),
                                                                overrides={"fairness.bbq": {"limit": 5}})}
    assert options["fairness.bbq"].limit == 5
    for bad, needle in (('probes: "*"\nexclude: fairness.bbq', "'exclude' must be a list"),
                        ('probes: "*"\noptions: [fairness.bbq]', "'options' must map"),
                        ('probes: "*"\noptions: []', "'options' must map"),
                        ('probes: "*"\noptions: {fairness.bbq: 3}', "'options' must map"),
                        ('probes: "*"\nexclude: [fairness.bbq]\noptions: {fairness.bbq: {}}', "an excluded probe"),
                        ("probes: {fairness.bbq: {}}\noptions: {fairness.bbq: {}}", "'options' goes with"),
                        ('probes: "*"\nexclude: ["Not An Id"]', "'exclude' must be a list"),
                        ("probes: {fairness.bbq: {}}\nexclude: [fairness.bbq]", "'exclude' goes with")):
        own.write_text(f"name: x\nversion: 1\n{bad}\n")
        with pytest.raises(BadInputError, match=needle):
            load_suite(own)


def test_the_smoke_suites_sampling_goes_with_its_data(tmp_path):
    registry, smoke = Registry(), load_suite("smoke")

    def options(pid, **layers):
        [p] = engine.plan(registry, [pid], suite=smoke, **layers)
        return p.probe.options

    assert (options("robustness.prompt_injection").sample, options("robustness.prompt_injection").sample_by) == \
        (8, ["task"])
    # other data, from the command line or a config file: the suite's sampling of it doesn't apply
    mine = {"robustness.prompt_injection": {"data": str(tmp_path / "tasks.jsonl")}}
    for given in ({"overrides": mine}, {"config": mine}):
        o = options("robustness.prompt_injection", **given)
        assert (o.sample, o.sample_by, o.limit) == (None, [], None)
    # the suite's options that are not about the data stay: 4 attacked examples a task
    assert options("robustness.adversarial_classification",
                   overrides={"robustness.adversarial_classification": {"data": "x.jsonl"}}).per_task == 4
    # the standard suite's format goes with its benchmark too
    standard = load_suite("standard")
    [p] = engine.plan(registry, ["fairness.stereoset"], suite=standard,
                      overrides={"fairness.stereoset": {"data": "mine.jsonl"}})
    assert (p.probe.options.format, p.probe.options.sample) == ("auto", None)
    # on the built-in set, 8 of the 16 tasks: 2 of each kind
    report = run_audit("mock", probes=["robustness.prompt_injection"], bootstrap_resamples=50,
                       cache_dir=tmp_path / "c", progress=False)
    [d] = report.result("robustness.prompt_injection").datasets
    assert (d.n_items, d.n_used) == (16, 8) and "stratified by task" in d.sampling


def test_suite_errors_are_one_line(tmp_path):
    with pytest.raises(UnknownNameError, match="did you mean standard"):
        load_suite("standrd")
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\nversion: 1\nprobes: {fairness.bbq: {}}\nextra: 1\n")
    with pytest.raises(BadInputError, match="unknown key"):
        load_suite(bad)
    bad.write_text("name: x\nversion: 1\nprobes: [fairness.bbq]\n")
    with pytest.raises(BadInputError, match="'probes' must be"):
        load_suite(bad)
    bad.write_text("name: x\nversion: 1\nprobes: {fairness.nope: {}}\n")
    with pytest.raises(UnknownNameError):
        engine.plan(Registry(), None, suite=load_suite(bad))


def test_suite_options_sit_under_the_users_and_probes_choose_among_its_own(tmp_path):
    registry = Registry()
    standard = load_suite("standard")
    planned = {p.probe.id: p.probe.options for p in engine.plan(registry, None, suite=standard)}
    assert set(planned) == set(standard.probes)
    assert planned["fairness.stereotype_pairs"].data == "benchmark:crows_pairs"
    assert planned["truthfulness.self_consistency"].limit is None  # the suite clears the spec's limit
    chosen = engine.plan(registry, ["fairness.*"], suite=standard, overrides={"fairness.stereoset": {"sample": 50}})
    by_id = {p.probe.id: p.probe.options for p in chosen}
    assert set(by_id) == {p for p in standard.probes if p.startswith("fairness.")}
    assert by_id["fairness.stereoset"].sample == 50 and by_id["fairness.stereoset"].sample_by == ["type", "bias_type"]
    quick = {p.probe.id: p.probe.options for p in engine.plan(registry, ["toxicity.continuation"], suite=standard,
                                                              quick=True)}
    assert quick["toxicity.continuation"].k == 5
    own = tmp_path / "mine.yaml"
    own.write_text("name: mine\nversion: 2\nprobes: {fairness.bbq: {}}\n")
    with pytest.raises(BadInputError, match="selects none of suite mine"):
        engine.plan(registry, ["toxicity.*"], suite=load_suite(own))
    with pytest.raises(BadInputError, match="'sample' needs a probe that reads a data file"):
        engine.plan(registry, ["privacy.membership_inference"], overrides={"privacy.membership_inference": {"sample": 3}})


# -- a suite run on published data ------------------------------------------------------------------
@needs_shared
def test_standard_suite_names_sources_and_samples(tmp_path):
    report = api.audit("mock", suite="standard", probes=["fairness.stereotype_pairs", "fairness.stereoset"],
                       data_dir=SHARED_DATASETS, limit=20, progress=False, bootstrap_resamples=50)
    assert report.run.suite == "standard@2" and len(report.run.suite_sha256) == 64
    by_id = {r.probe_id: r for r in report.results}
    crows = by_id["fairness.stereotype_pairs"].datasets[0]
    assert crows.name == "crows_pairs" and crows.n_items == 1508 and crows.n_used == 20 and crows.sampling is None
    assert crows.source["revision"] == "8aaac11c485473159ec9328a65253a5be9a479dc"
    assert crows.source["origin"] == "data-dir" and crows.sha256 == crows.source["sha256"]
    stereoset = by_id["fairness.stereoset"].datasets[0]
    assert stereoset.sampling.startswith("stratified by type, bias_type") and "sample of 1,000 of" in stereoset.sampling
    assert stereoset.n_used == 20


@needs_shared
def test_offline_without_copies_is_one_line_naming_data_dir(tmp_path):
    def offline(url: str, max_bytes: int) -> bytes:
        raise OSError("network is unreachable")

    with pytest.raises(DataError, match="--data-dir") as exc:
        run_audit("mock", suite="standard", probes=["fairness.stereotype_pairs"], progress=False, limit=5,
                  cache_dir=tmp_path / "cache", fetcher=offline)
    assert "\n" not in str(exc.value)
    proc = run_cli("audit", "mock", "--suite", "standard", "--probes", "fairness.winobias",
                   "--data-dir", str(tmp_path), "--out", str(tmp_path / "out"), "--no-progress")
    assert_one_line_error(proc, 2, "winobias")
    assert not (tmp_path / "out" / "report.json").exists()


# -- where the time went ------------------------------------------------------------------------
def test_speed_figures_add_up_and_count_shared_and_cached_requests(tmp_path):
    # alone, the MC probe shares nothing: its answers that are both MC1 and MC2 choices are repeats
    alone = api.audit("mock", probes=["truthfulness.truthfulqa_mc"], limit=8, progress=False, bootstrap_resamples=20,
                      cache_dir=tmp_path / "alone").results[0].speed
    assert alone.shared == 0 and alone.repeated > 0 and alone.computed + alone.repeated == alone.requests
    probes = ["truthfulness.truthfulqa_mc", "truthfulness.calibration"]
    options = {"truthfulness.calibration": {"data": "builtin:truthfulqa_style.csv"}}
    first = api.audit("mock", probes=probes, options=options, limit=8, progress=False, bootstrap_resamples=20,
                      cache_dir=tmp_path)
    speed = {r.probe_id: r.speed for r in first.results}
    for s in speed.values():
        assert s.model_time_s >= 0 and s.overhead_s >= 0 and s.cache_hits == 0
        assert s.computed + s.shared + s.repeated == s.requests
    # the MC probe asks TruthfulQA's MC1 options, which calibration (earlier in id order) asked first
    assert speed["truthfulness.truthfulqa_mc"].shared > 0
    assert speed["truthfulness.calibration"].shared == 0
    assert speed["truthfulness.truthfulqa_mc"].tokens > 0
    assert sum(s.computed for s in speed.values()) == first.run.cache_misses
    again = api.audit("mock", probes=probes, options=options, limit=8, progress=False, bootstrap_resamples=20,
                      cache_dir=tmp_path, resume=True)
    for r in again.results:
        assert r.speed.computed == 0 and r.speed.tokens == 0 and r.speed.model_time_s == 0
        assert r.speed.cache_hits + r.speed.shared + r.speed.repeated == r.speed.requests
    assert json.loads(again.model_dump_json())["results"][0]["speed"]["cache_hits"] > 0
