"""The plugin registry, fed by Python entry points. Built-ins register through the same groups
as third-party packages, so every run exercises the extension path.

Groups:

* ``trustslm.probes``: each entry point names a folder of probe specs (``*/spec.yaml``);
* ``trustslm.probe_kinds``: probe kind name -> :class:`~trustslm.probes.base.Probe` subclass;
* ``trustslm.scorers``: scorer name -> :class:`~trustslm.scorers.base.Scorer` subclass;
* ``trustslm.models``: model kind -> :class:`~trustslm.models.base.ModelAdapter` subclass;
* ``trustslm.mitigations``: mitigation name -> :class:`~trustslm.mitigations.base.Mitigation` subclass.

A registry is an object a run owns, not a module global. It loads lazily, refuses duplicate ids,
and answers an unknown name with the close ones.
"""

from __future__ import annotations

import difflib
import fnmatch
from functools import cached_property
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trustslm.errors import BadInputError, UnknownNameError
from trustslm.specs import ProbeSpec, load_spec_file

if TYPE_CHECKING:
    from trustslm.probes.base import Probe
    from trustslm.scorers.base import Scorer

GROUPS = ("trustslm.probes", "trustslm.probe_kinds", "trustslm.scorers", "trustslm.models", "trustslm.mitigations")


def unknown_name_error(what: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(sorted(known))}"
    return UnknownNameError(f"unknown {what} {name!r}{hint}")


class Registry:
    def __init__(self, eps: dict[str, list[EntryPoint]] | None = None):
        self._eps = eps

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

    def spec(self, probe_id: str) -> ProbeSpec:
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
                if not hits:
                    raise unknown_name_error("probe pattern", pattern, list(self.specs))
                for h in hits:
                    chosen[h] = self.specs[h]
            else:
                chosen[pattern] = self.spec(pattern)
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
        from trustslm.probes.base import Probe

        cls = self._load("trustslm.probe_kinds", "probe kind", name)
        if not (isinstance(cls, type) and issubclass(cls, Probe)):
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
        from trustslm.mitigations.base import Mitigation

        cls = self._load("trustslm.mitigations", "mitigation", name)
        if not (isinstance(cls, type) and issubclass(cls, Mitigation)):
            raise BadInputError(f"mitigation {name!r} does not name a Mitigation subclass")
        return cls
