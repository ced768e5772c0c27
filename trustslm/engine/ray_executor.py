"""``--executor ray``: an audit's batches computed on a pool of model replicas, one Ray actor each.

What stays the same as a local run:

* **The batches.** The driver's model plans them (:meth:`~trustslm.models.base.ModelAdapter.plan_batches`)
  and each goes whole to one replica as one call of the model's public method, so every result is
  computed in the batch a single process would compute it in. Batches finish in any order; their
  results don't depend on it.
* **The cache.** Replicas only compute. Each finished batch comes back to the driver and goes to
  ``on_batch``, which commits it to the request cache there, so the cache is written in one place and
  ``--resume`` goes on from it whichever executor computed what is in it.
* **The identity.** Each replica builds its model with the driver's factory and reports its
  identity (:attr:`~trustslm.core.types.ModelInfo.identity`: weights, dtype, device, library
  versions); one that differs from the driver's is a ``BackendError`` before any of its results is
  used, so a replica that loaded other bytes never writes into the driver's cache.

A failed batch or a lost replica is a one-line ``BackendError`` (exit 3) after the batches that had
finished were passed to ``on_batch``; :meth:`RayExecutor.close` (called from a ``finally``, so on
Ctrl-C too) kills the replicas and disconnects from the cluster it connected to (stopping a local
one it started).

Replicas: ``"auto"`` is one per GPU of the cluster (each actor holds one), else one per CPU. A
replica on a CPU-only cluster runs torch with its share of the cluster's cores
(``torch.set_num_threads``), so replicas don't oversubscribe them.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Any

from trustslm.core.errors import BackendError, BadInputError
from trustslm.models.base import RESULT_TYPES, BatchCallback, ModelAdapter, Request, model_info

#: Batches queued per replica: one computing, one waiting, so a replica never idles between batches.
IN_FLIGHT = 2


class _Replica:
    """One model replica (the body of a Ray actor): the model ``factory()`` builds, in the actor."""

    def __init__(self, factory: Callable[[], ModelAdapter], threads: int | None):
        if threads is not None:  # a CPU replica: its share of the cores, not all of them
            import torch

            torch.set_num_threads(threads)
        self.model = factory()

    def identity(self) -> str:
        return model_info(self.model).identity

    def compute(self, kind: str, batch: list[Request]) -> list[Any]:
        if kind not in RESULT_TYPES:
            raise ValueError(f"unknown request kind {kind!r}")
        return getattr(self.model, kind)(batch)


class RayExecutor:
    """Batches on ``replicas`` model replicas (``"auto"``: one per GPU of the cluster, else one per
    CPU), each built by ``factory()`` in its own actor on the first :meth:`run`; every replica's
    identity must equal ``identity`` (the driver's model's; not checked when None)."""

    def __init__(self, factory: Callable[[], ModelAdapter], *, replicas: int | str = "auto",
                 identity: str | None = None):
        try:
            import ray
        except ImportError:
            raise BadInputError("--executor ray needs the ray extra: pip install 'trustslm[ray]'") from None
        if replicas != "auto" and (not isinstance(replicas, int) or replicas < 1):
            raise BadInputError(f"replicas must be a positive integer or 'auto', not {replicas!r}")
        self._ray = ray
        self._factory, self._replicas, self._identity = factory, replicas, identity
        self._actors: list[Any] = []
        self._pending: dict[Any, tuple[int, list[int]]] = {}  # task -> (replica, positions)
        self._connected = False  # whether this executor called ray.init (and so disconnects)

    def run(self, model: ModelAdapter, kind: str, requests: Sequence[Request], on_batch: BatchCallback) -> None:
        """Compute ``requests`` (all of ``kind``) batch by batch on the replicas, calling
        ``on_batch(positions, results)`` here as each batch finishes."""
        ray = self._ray
        actors = self._start()
        queue = collections.deque(model.plan_batches(requests))
        load = [0] * len(actors)
        pending = self._pending

        def submit() -> None:
            while queue:
                r = min(range(len(actors)), key=load.__getitem__)
                if load[r] >= IN_FLIGHT:
                    return
                positions = queue.popleft()
                task = actors[r].compute.remote(kind, [requests[i] for i in positions])
                pending[task] = (r, positions)
                load[r] += 1

        submit()
        while pending:
            [task], _ = ray.wait(list(pending), num_returns=1)
            r, positions = pending.pop(task)
            load[r] -= 1
            try:
                results = ray.get(task)
            except Exception as exc:
                self._pass_finished(on_batch)
                raise BackendError(f"replica {r + 1} of {len(actors)} failed on a {kind} batch: "
                                   f"{_one_line(exc)}") from None
            if len(results) != len(positions):
                raise BackendError(f"replica {r + 1} returned {len(results)} results for {len(positions)} requests")
            on_batch(positions, results)
            submit()

    def close(self) -> None:
        """Kill the replicas (tasks still running end with them) and disconnect from the cluster
        if this executor connected (a local cluster it started stops; a joined one stays up)."""
        ray = self._ray
        self._pending.clear()
        for actor in self._actors:
            ray.kill(actor)
        self._actors = []
        if self._connected:
            ray.shutdown()
            self._connected = False

    # -- internals ----------------------------------------------------------------------------
    def _start(self) -> list[Any]:
        """The replicas, started (and the cluster joined) on the first call, identities checked."""
        if self._actors:
            return self._actors
        ray = self._ray
        if not ray.is_initialized():
            # RAY_ADDRESS joins a cluster ("auto": one started here by `ray start`); without it,
            # a local cluster of this machine, never a stale one found in /tmp/ray (address=None would).
            address = os.environ.get("RAY_ADDRESS") or "local"
            main = threading.current_thread() is threading.main_thread()
            on_sigterm = signal.getsignal(signal.SIGTERM) if main else None
            try:
                ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
                         log_to_driver=False, logging_level=logging.WARNING)
            except Exception as exc:
                what = "start a local Ray cluster" if address == "local" else f"join the Ray cluster at {address}"
                raise BackendError(f"could not {what}: {_one_line(exc)}") from None
            finally:
                if on_sigterm is not None:  # Ray's own handler aborts the process: keep the caller's
                    signal.signal(signal.SIGTERM, on_sigterm)  # (the CLI's stops cleanly, exit 130)
            self._connected = True
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        n = self._replicas if self._replicas != "auto" else (gpus or cpus)
        if gpus:  # GPUs shared evenly when there are more replicas than GPUs
            options, threads = {"num_gpus": 1 / -(-n // gpus), "num_cpus": 1}, None
        else:  # each replica's share of the cores; more replicas than cores reserve none
            options, threads = {"num_cpus": 1 if n <= cpus else 0}, max(1, cpus // n)
        actor = ray.remote(_Replica).options(**options)
        self._actors = [actor.remote(self._factory, threads) for _ in range(n)]
        try:
            identities = ray.get([a.identity.remote() for a in self._actors])
        except Exception as exc:
            raise BackendError(f"a model replica failed to start: {_one_line(exc)}") from None
        for r, got in enumerate(identities):
            if self._identity is not None and got != self._identity:
                raise BackendError(f"replica {r + 1} loaded a different model (identity {got[:12]}, not "
                                   f"{self._identity[:12]}): the model files, dtype, device or library versions "
                                   "differ on its node")
        return self._actors

    def _pass_finished(self, on_batch: BatchCallback) -> None:
        """Pass the batches that have finished (and did not fail) to ``on_batch``, so they are cached."""
        ray = self._ray
        if not self._pending:
            return
        ready, _ = ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
        for task in ready:
            _, positions = self._pending.pop(task)
            try:
                results = ray.get(task)
            except Exception:
                continue
            if len(results) == len(positions):
                on_batch(positions, results)


def _one_line(exc: BaseException) -> str:
    """The error a replica raised, in one line: its type and first line (not Ray's traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        text = str(cause).strip().splitlines()
        return f"{type(cause).__name__}: {text[0]}" if text else type(cause).__name__
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else 'no message'}"
