"""``--executor ray``: batches computed on Ray actors give the same report as a local run, fill the
same cache (``--resume`` goes on across executors), and a replica that loads another model, or fails,
stops the run with one line. One 2-CPU local Ray cluster serves the whole module."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # a local Ray cluster and audits on two replicas

import trustslm  # noqa: E402
from trustslm.core.errors import BackendError  # noqa: E402
from trustslm.engine.ray_executor import RayExecutor  # noqa: E402
from trustslm.models.base import LoglikelihoodRequest, model_info  # noqa: E402
from trustslm.models.mock import ScriptedModel  # noqa: E402
from trustslm.testing.reports import comparable  # noqa: E402
from trustslm.workflows.load import load_model  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PROBES = ["fairness.stereotype_pairs", "toxicity.continuation"]  # log-likelihoods and seeded samples
OPTIONS = {"toxicity.continuation": {"k": 3, "max_new_tokens": 6}}
# batch_size=2: 4 pairs give 4 log-likelihood batches, and 4 prompts x 3 samples 2 generation
# batches (a generation batch takes up to 4 x batch_size rows within its token budget), so both
# replicas get work and batches finish out of order.
RUN = dict(probes=PROBES, options=OPTIONS, limit=4, seed=3, batch_size=2, progress=False)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray cluster of 2 CPUs for the module (the executor joins it and leaves it running)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING",
             ignore_reinit_error=True)
    # The failing model below is defined here, so it travels to the actors by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(cluster, tiny_llama, tmp_path_factory):
    """The audit on 2 replicas, its cache folder and its report folder."""
    root = tmp_path_factory.mktemp("ray-run")
    report = trustslm.audit(str(tiny_llama), executor="ray", replicas=2, cache_dir=root / "cache",
                            out=root / "out", **RUN)
    return report, root


def test_ray_report_equals_local(ray_run, tiny_llama, tmp_path):
    remote, _ = ray_run
    local = trustslm.audit(str(tiny_llama), cache_dir=tmp_path / "cache", **RUN)
    assert remote.run.cache_misses == local.run.cache_misses > 0
    for a, b in zip(local.results, remote.results, strict=True):
        assert a.status == b.status == "ok"
        assert [m.model_dump() for m in a.metrics] == [m.model_dump() for m in b.metrics]  # values, intervals
        assert a.score == b.score
    assert local.dimensions == remote.dimensions and local.overall == remote.overall
    assert comparable(local) == comparable(remote)
    assert local._samples == remote._samples  # every generation, word for word


def test_resume_locally_from_a_ray_cache(ray_run, tiny_llama):
    remote, root = ray_run
    resumed = trustslm.audit(str(tiny_llama), cache_dir=root / "cache", resume=True, **RUN)
    assert resumed.run.cache_misses == 0
    assert resumed.run.cache_hits == remote.run.cache_misses
    assert comparable(resumed) == comparable(remote)


def test_replica_with_another_model_is_refused(cluster, tiny_llama, tiny_gpt2, tmp_path):
    driver = load_model(str(tiny_llama), cache_dir=tmp_path)
    other = functools.partial(load_model, str(tiny_gpt2), cache_dir=tmp_path)
    executor = RayExecutor(other, replicas=1, identity=model_info(driver).identity)
    got = []
    try:
        with pytest.raises(BackendError, match="different model") as err:
            executor.run(driver, "loglikelihood", [LoglikelihoodRequest("a", " b")], lambda i, r: got.append(i))
    finally:
        executor.close()
    assert "\n" not in str(err.value) and got == []


class _Failing(ScriptedModel):
    """A mock that fails on the batch holding 'boom' (defined in this module, sent by value)."""

    def _loglikelihood_batch(self, batch):
        if any("boom" in r.context for r in batch):
            raise RuntimeError("boom in the model\nsecond line of the error")
        return super()._loglikelihood_batch(batch)


def test_failed_batch_is_one_line_after_finished_batches(cluster):
    # Longest first: the 'boom' request (the shortest) is in the last of 3 batches of 2.
    requests = [LoglikelihoodRequest("a long context number %d with many words" % i, " x") for i in range(4)]
    requests.append(LoglikelihoodRequest("boom", " x"))
    requests.append(LoglikelihoodRequest("short context", " x"))
    driver = ScriptedModel(batch_size=2)
    executor = RayExecutor(functools.partial(_Failing, batch_size=2), replicas=1,
                           identity=model_info(driver).identity)
    done: list[int] = []
    try:
        with pytest.raises(BackendError, match="RuntimeError: boom in the model") as err:
            executor.run(driver, "loglikelihood", requests, lambda idx, res: done.extend(idx))
    finally:
        executor.close()
    assert "\n" not in str(err.value)
    assert sorted(done) == [0, 1, 2, 3]  # the two batches before the failure reached on_batch (the cache)


@pytest.mark.slow
def test_cli_audit_with_ray(tiny_llama, tmp_path):
    env = {**os.environ, "TRUSTSLM_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("RAY_ADDRESS", None)  # its own local cluster, sized to this machine, stopped at the end
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "trustslm"), "audit", str(tiny_llama), "--executor", "ray",
         "--replicas", "2", "--probes", "fairness.stereotype_pairs", "--limit", "2", "--batch-size", "1",
         "--out", str(tmp_path / "out"), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["results"][0]["status"] == "ok" and report["run"]["cache_misses"] == 4
