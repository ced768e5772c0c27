"""Suites: a named choice of probes, their data and sample counts (``--suite``).

A suite is a YAML file; the built-in ones are ``probes/suites/NAME.yaml``, and ``--suite`` also
takes a path to one of the user's own::

    name: standard
    version: "1"
    summary: The published benchmarks with their published protocols.
    probes:                       # the probes it runs, each with its options ("*": every probe)
      fairness.stereotype_pairs: {data: "benchmark:crows_pairs", format: crows_pairs_csv}
      truthfulness.truthfulqa_mc: {data: "benchmark:truthfulqa_mc"}
    quick:                        # options over those in the quick profile (--quick)
      toxicity.continuation: {k: 5}

``probes: "*"`` runs every installed probe but those listed under ``exclude`` (the smoke suite
leaves out the probes whose metric means nothing on a small written set); such a suite gives
probes options under ``options`` (``{probe id: options}``; an id the registry doesn't know is
ignored, as in ``exclude``: the smoke suite also serves the utility probes).

Its options sit over the specs' (and their ``quick`` options) and under everything the user gives:
what is found beside the model, ``--config`` and ``--set``. ``--probes`` chooses among the
suite's probes. ``smoke`` (every probe on the project's own small sets, offline) is the default.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trustslm.core.errors import BadInputError
from trustslm.core.registry import Registry, unknown_name_error
from trustslm.core.resources import probes_dir
from trustslm.core.specs import PROBE_ID_PATTERN
from trustslm.core.textfiles import check_tree, read_yaml_file

DEFAULT_SUITE = "smoke"
_KEYS = {"name", "version", "summary", "probes", "exclude", "options", "quick"}


@dataclass(frozen=True)
class Suite:
    name: str
    version: str
    summary: str
    probes: list[str] | None  # None: every registered probe but those in ``exclude``
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    quick: dict[str, dict[str, Any]] = field(default_factory=dict)
    sha256: str = ""
    #: With ``probes`` None: the probe ids (or aliases) left out.
    exclude: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def suites_dir() -> Path:
    return probes_dir() / "suites"


def suite_names() -> list[str]:
    return sorted(p.stem for p in suites_dir().glob("*.yaml"))


def load_suite(name: str | Path) -> Suite:
    """The built-in suite ``name``, or the suite file at that path (untrusted: bounded, checked)."""
    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
    else:
        path = suites_dir() / f"{text}.yaml"
        if not path.is_file():
            raise unknown_name_error("suite", text, suite_names())
    data, digest = read_yaml_file(path, "suite")
    check_tree(data, f"suite {path}")
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise BadInputError(f"suite {path}: unknown key(s) {', '.join(map(str, unknown))} (keys: {', '.join(sorted(_KEYS))})")
    for key in ("name", "version"):
        if not isinstance(data.get(key), (str, int, float)) or not str(data.get(key)).strip():
            raise BadInputError(f"suite {path}: needs a '{key}'")
    probes = data.get("probes")
    star_options = data.get("options")
    if probes == "*":
        chosen, options = None, {} if star_options is None else star_options
        if not isinstance(options, dict) or not all(isinstance(k, str) and re.fullmatch(PROBE_ID_PATTERN, k)
                                                    and isinstance(v, dict) for k, v in options.items()):
            raise BadInputError(f"suite {path}: 'options' must map probe ids to options")
    elif isinstance(probes, dict) and probes and all(v is None or isinstance(v, dict) for v in probes.values()):
        chosen, options = [str(k) for k in probes], {str(k): dict(v or {}) for k, v in probes.items()}
    else:
        raise BadInputError(f"suite {path}: 'probes' must be \"*\" or a mapping of probe ids to their options")
    exclude = data.get("exclude") or []
    if not isinstance(exclude, list) or not all(isinstance(x, str) and re.fullmatch(PROBE_ID_PATTERN, x)
                                                    for x in exclude):
        raise BadInputError(f"suite {path}: 'exclude' must be a list of probe ids")
    if exclude and chosen is not None:
        raise BadInputError(f"suite {path}: 'exclude' goes with probes: \"*\" (a mapping names its probes)")
    if star_options is not None and chosen is not None:
        raise BadInputError(f"suite {path}: 'options' goes with probes: \"*\" (a mapping gives each probe its options)")
    if set(options) & set(exclude):
        raise BadInputError(f"suite {path}: 'options' for an excluded probe: {', '.join(sorted(set(options) & set(exclude)))}")
    quick = data.get("quick") or {}
    if not isinstance(quick, dict) or not all(isinstance(v, dict) for v in quick.values()):
        raise BadInputError(f"suite {path}: 'quick' must map probe ids to options")
    return Suite(name=str(data["name"]), version=str(data["version"]), summary=str(data.get("summary", "")),
                 probes=chosen, options={str(k): dict(v) for k, v in options.items()}, quick={str(k): dict(v) for k, v in quick.items()}, sha256=digest,
                 exclude=tuple(exclude))


def suite_arg(suite: str | Path | Suite | None) -> Suite:
    if isinstance(suite, Suite):
        return suite
    return load_suite(suite if suite is not None else DEFAULT_SUITE)


def suite_probe_ids(registry: Registry, suite: Suite) -> set[str]:
    """The ids of the probes ``suite`` runs. An unknown id among its probes is an error; an
    exclusion ``registry`` doesn't know leaves nothing out (a suite may be applied to another group
    of probes, such as the utility probes)."""
    if suite.probes is None:
        return set(registry.specs) - {registry.canonical(pid) for pid in suite.exclude}
    return {registry.spec(pid).id for pid in suite.probes}


def suites_running(registry: Registry, probe_ids: list[str]) -> list[str]:
    """The built-in suites that run at least one of ``probe_ids``."""
    return [name for name in suite_names() if suite_probe_ids(registry, load_suite(name)) & set(probe_ids)]
