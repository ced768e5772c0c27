"""The package's layers point down, and nothing imports in a circle.

Imports are read from the source (function-local ones too; those under ``if TYPE_CHECKING:`` are
only for type checkers and are left out), as ``../shared/tools/import_cycles.py`` reads them. Each
subpackage (or top-level module) of ``trustslm`` sits in one layer of :data:`LAYERS`; a module may
import its own subpackage and the layers below its own, never a layer above or a sibling in its
layer. The README's Architecture section draws the same picture.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "trustslm"

#: Lowest first. A subpackage may import only from layers below its own (and itself).
LAYERS: list[tuple[str, ...]] = [
    ("core", "_version"),                      # types, specs, errors, hashing, the plugin registry
    ("data", "scoring", "privacy"),            # dataset readers; metric and bootstrap maths
    ("models",),                               # the backend contract and its built-in backends
    ("compress",),                             # quantise, convert and prune model files (llama.cpp's tools)
    ("scorers",),                              # toxicity classifiers, embedders
    ("robustness",),                           # TextAttack environment, attack helpers
    ("probes",),                               # the probe contract and the probe kinds
    ("train",),                                # fine-tuning, DP-SGD
    ("mitigations",),                          # mitigation plugins and decoding wrappers
    ("engine",),                               # plan, execute, cache, score an audit
    ("gate",),                                 # paired comparison of reports, release policies
    ("report",),                               # renderers and report files
    ("workflows",),                            # the only modules that sequence steps
    ("api",),                                  # the Python API
    ("cli", "pytest_plugin", "testing"),       # commands; the trust_gate fixture; tiny models, scenarios
    ("__main__", ""),                          # ``python -m trustslm``; the package root (lazy API names)
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules() -> dict[str, Path]:
    out = {}
    for f in sorted(ROOT.rglob("*.py")):
        parts = list(f.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = f
    return out


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for sub in node.body for n in ast.walk(sub))
    base = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    out = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = (".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                   if node.level else node.module or "")
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("trustslm") and t != name:
                out.add(t)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {name: _imports(name, path, set(mods)) for name, path in mods.items()}


def _unit(module: str) -> str:
    """The subpackage (or top-level module) a module belongs to: ``trustslm.models.hf`` -> ``models``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_subpackage_has_a_layer():
    units = {_unit(m) for m in _modules()}
    assert units - set(LAYER_OF) == set(), "add the new subpackage to LAYERS (and the README's picture)"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    upward = []
    for src, deps in graph.items():
        for dst in deps:
            a, b = _unit(src), _unit(dst)
            if a != b and LAYER_OF[b] >= LAYER_OF[a]:
                upward.append(f"{src} -> {dst} ({a} is layer {LAYER_OF[a]}, {b} is layer {LAYER_OF[b]})")
    return sorted(upward)


def test_imports_point_down():
    assert _upward(_graph()) == []


@pytest.mark.parametrize("level", ["module", "package"])
def test_no_import_cycles(level):
    graph = _graph()
    if level == "package":
        packed: dict[str, set[str]] = {}
        for src, deps in graph.items():
            packed.setdefault(_unit(src), set()).update(_unit(d) for d in deps if _unit(d) != _unit(src))
        graph = packed
    assert _cycles(graph) == []


def test_the_checker_sees_an_upward_import_and_a_cycle():
    """The checks above can fail: a planted upward import and a planted cycle are found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _upward({"trustslm.core.types": {"trustslm.report.html"}, "trustslm.data.qa": {"trustslm.scoring.answers"},
                    "trustslm.api": {"trustslm.core.types"}}) == [
        "trustslm.core.types -> trustslm.report.html (core is layer 0, report is layer 11)",
        "trustslm.data.qa -> trustslm.scoring.answers (data is layer 1, scoring is layer 1)"]
    tree_module = ROOT / "core" / "errors.py"
    imports = _imports("trustslm.core.errors", tree_module, set(_modules()))
    assert all(_unit(d) == "core" for d in imports)
    assert LAYER_OF["workflows"] > LAYER_OF["engine"] > LAYER_OF["probes"] > LAYER_OF["models"] > LAYER_OF["core"]
