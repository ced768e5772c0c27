"""Where a run's batches are computed: in this process (:class:`LocalExecutor`, the default) or
on a pool of model replicas (:class:`~trustslm.engine.ray_executor.RayExecutor`, ``--executor ray``).

An executor takes one request kind's requests that are not cached yet and calls ``on_batch``
with each finished batch (its positions in the list and its results); the engine commits every
batch to the request cache in this process, so the cache stays the single place results are
written, and ``--resume`` works whichever executor computed them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from trustslm.core.errors import BadInputError
from trustslm.models.base import BatchCallback, ModelAdapter, Request

#: The executors ``--executor`` names.
EXECUTORS = ("local", "ray")
Replicas = int | Literal["auto"]


class Executor(Protocol):
    def run(self, model: ModelAdapter, kind: str, requests: Sequence[Request], on_batch: BatchCallback) -> None:
        """Compute ``requests`` (all of ``kind``) for ``model``, calling ``on_batch`` per batch."""

    def close(self) -> None:
        """Free what the executor holds (replicas, a cluster connection)."""


class LocalExecutor:
    """The model's own batch loop, in this process."""

    def run(self, model: ModelAdapter, kind: str, requests: Sequence[Request], on_batch: BatchCallback) -> None:
        getattr(model, kind)(requests, on_batch=on_batch)

    def close(self) -> None:
        pass


def make_executor(name: str, *, replicas: Replicas = "auto", factory: Callable[[], ModelAdapter] | None = None,
                  identity: str | None = None) -> Executor:
    """The executor ``name`` names. ``factory`` builds one model replica (in another process, so
    it must be picklable: a function of the model's name and options, never an adapter object);
    each replica's identity must equal ``identity`` (the driver's model), or the run stops."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        if factory is None:
            raise BadInputError("--executor ray needs a model named by a path or a name, not an adapter object")
        from trustslm.engine.ray_executor import RayExecutor

        return RayExecutor(factory, replicas=replicas, identity=identity)
    raise BadInputError(f"unknown executor {name!r} (executors: {', '.join(EXECUTORS)})")
