"""The plugin registry, fed by Python entry points. Built-ins register through the same groups
as third-party packages, so every run exercises the extension path.

Groups:

* ``trustslm.probes``: each entry point names a folder of probe specs (``*/spec.yaml``);
* ``trustslm.probe_kinds``: probe kind name -> :class:`~trustslm.probes.base.Probe` subclass;
* ``trustslm.scorers``: scorer name -> :class:`~trustslm.scorers.base.Scorer` subclass;
* ``trustslm.models``: model kind -> :class:`~trustslm.models.base.ModelAdapter` subclass;
* ``trustslm.mitigations``: mitigation name -> :class:`~trustslm.mitigations.base.Mitigation` subclass;
* ``trustslm.renderers``: report format (``md``, ``html``, ``html-fragment``...) -> a function of a report.

A registry is an object a run owns, not a module global. It loads lazily, refuses duplicate ids,
and answers an unknown name with the close ones.
"""

from __future__ import annotations

import difflib
import fnmatch
import warnings
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustslm.core.errors import BadInputError, TrustSLMDeprecationWarning, UnknownNameError
from trustslm.core.specs import ProbeSpec, load_spec_file

if TYPE_CHECKING:
    from trustslm.probes.base import Probe
    from trustslm.scorers.base import Scorer

GROUPS = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.scorers", "trustslm.models", "trustslm.mitigations",
          "trustslm.renderers")


def unknown_name_error(what: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    return UnknownNameError(f"unknown {what} {name!r}{hint}")


class Registry:
    def __init__(self, eps: dict[str, list[EntryPoint]] | None = None):
        self._eps = eps
        self._warned: set[str] = set()

    def _group(self, group: str) -> dict[str, EntryPoint]:
        if self._eps is not None:
            found = list(self._eps.get(group, []))
        else:
            found = list(entry_points(group=group))
        out: dict[str, EntryPoint] = {}
        for ep in found:
            if ep.name in out and out[ep.name].value != ep.value:
                raise BadInputError(
                    f"two plugins register {ep.name!r} in {group}: {out[ep.name].value} and {ep.value}"
                )
            out[ep.name] = ep
        return out

    # -- probe specs ------------------------------------------------------------------------
    @cached_property
    def specs(self) -> dict[str, ProbeSpec]:
        specs: dict[str, ProbeSpec] = {}
        for provider, ep in sorted(self._group("trustslm.probes").items()):
            root = Path(str(ep.load()))
            for path in sorted(root.glob("**/spec.yaml")):
                spec = load_spec_file(path, provider=provider)
                if spec.id in specs:
                    raise BadInputError(
                        f"probe id {spec.id!r} is defined twice: {specs[spec.id].spec_path} and {path}"
                    )
                specs[spec.id] = spec
        return specs

    @cached_property
    def aliases(self) -> dict[str, str]:
        """Former probe ids -> current ids (a spec's ``aliases``)."""
        out: dict[str, str] = {}
        for spec in self.specs.values():
            for alias in spec.aliases:
                if alias in self.specs or out.get(alias, spec.id) != spec.id:
                    raise BadInputError(f"probe alias {alias!r} ({spec.spec_path}) is already a probe id or alias")
                out[alias] = spec.id
        return out

    def canonical(self, probe_id: str, *, warn: bool = True) -> str:
        """The current id of ``probe_id``: itself, or the id a former one now has (with a
        one-line :class:`TrustSLMDeprecationWarning`, once per id and registry, when ``warn``)."""
        new = self.aliases.get(probe_id)
        if new is None:
            return probe_id
        if warn and probe_id not in self._warned:
            self._warned.add(probe_id)
            warnings.warn(f"probe id {probe_id!r} is deprecated; it is now {new!r}",
                          TrustSLMDeprecationWarning, stacklevel=3)
        return new

    def canonical_keys(self, by_probe: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """``{probe id: options}`` with former ids replaced by current ones (options merged, the
        current id's winning)."""
        out: dict[str, dict[str, Any]] = {}
        for pid in sorted(by_probe, key=lambda k: k in self.specs):  # former ids first
            key = self.canonical(pid)
            out[key] = {**out.get(key, {}), **by_probe[pid]}
        return out

    def spec(self, probe_id: str) -> ProbeSpec:
        probe_id = self.canonical(probe_id)
        try:
            return self.specs[probe_id]
        except KeyError:
            raise unknown_name_error("probe", probe_id, list(self.specs)) from None

    def select(self, patterns: list[str] | None) -> list[ProbeSpec]:
        """Probe specs matching ids or globs (all of them for ``None``), in id order."""
        if not patterns:
            return [self.specs[k] for k in sorted(self.specs)]
        chosen: dict[str, ProbeSpec] = {}
        for pattern in patterns:
            pattern = pattern.strip()
            if not pattern:
                continue
            if any(ch in pattern for ch in "*?["):
                hits = fnmatch.filter(sorted(self.specs), pattern)
                hits += [self.canonical(a) for a in fnmatch.filter(sorted(self.aliases), pattern)]
                if not hits:
                    raise unknown_name_error("probe pattern", pattern, list(self.specs))
                for h in hits:
                    chosen[h] = self.specs[h]
            else:
                spec = self.spec(pattern)
                chosen[spec.id] = spec
        if not chosen:
            raise BadInputError("no probes selected")
        return [chosen[k] for k in sorted(chosen)]

    # -- code plugins -----------------------------------------------------------------------
    def _load(self, group: str, what: str, name: str) -> Any:
        eps = self._group(group)
        if name not in eps:
            raise unknown_name_error(what, name, list(eps))
        return eps[name].load()

    def probe_kind(self, name: str) -> type[Probe]:
        cls = self._load("trustslm.probe_kinds", "probe kind", name)
        if not _has(cls, PROBE_ATTRIBUTES):
            raise BadInputError(f"probe kind {name!r} does not name a Probe subclass")
        return cls

    def scorer_names(self) -> list[str]:
        return sorted(self._group("trustslm.scorers"))

    def scorer(self, name: str) -> type[Scorer]:
        return self._load("trustslm.scorers", "scorer", name)

    def model_kinds(self) -> list[str]:
        return sorted(self._group("trustslm.models"))

    def model_kind(self, name: str) -> Any:
        return self._load("trustslm.models", "model kind", name)

    def mitigation_names(self) -> list[str]:
        return sorted(self._group("trustslm.mitigations"))

    def mitigation(self, name: str) -> Any:
        cls = self._load("trustslm.mitigations", "mitigation", name)
        if not _has(cls, MITIGATION_ATTRIBUTES):
            raise BadInputError(f"mitigation {name!r} does not name a Mitigation subclass")
        return cls

    def renderer_names(self) -> list[str]:
        return sorted(self._group("trustslm.renderers"))

    def renderer(self, name: str) -> Any:
        """A report renderer: a function of a report returning its text (``md``, ``html``...)."""
        fn = self._load("trustslm.renderers", "report format", name)
        if not callable(fn):
            raise BadInputError(f"report format {name!r} does not name a function")
        return fn


#: What the engine calls on a probe kind and a mitigation. The core checks plugins by these
#: attributes, not by importing the families' base classes (the core imports nothing above it).
PROBE_ATTRIBUTES = ("Options", "metrics", "needs", "load", "check", "requests", "adapt", "score")
MITIGATION_ATTRIBUTES = ("Options", "dimension", "kind", "targets", "applicable", "record")


def _has(cls: Any, attributes: tuple[str, ...]) -> bool:
    return isinstance(cls, type) and all(hasattr(cls, a) for a in attributes)
