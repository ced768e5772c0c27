"""The documentation still matches the repository: every relative link resolves (to a file, and to
a heading for ``#anchor``), every ``trustslm`` command shown names a real subcommand and only flags
its argparse parser accepts, and every script, notebook, module and repository path named exists.

Nothing is run: commands are checked against :func:`trustslm.cli.main.build_parser`, paths against
the working tree. Each check is also fed a made-up command, link or path, to show it can fail.
"""

from __future__ import annotations

import argparse
import ast
import re
import shlex
import sysconfig
from pathlib import Path

import pytest

from trustslm.cli.main import build_parser
from trustslm.core.registry import GROUPS

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "SECURITY.md", ROOT / "probes" / "README.md",
               ROOT / "datasets" / "README.md", *(ROOT / "docs").glob("*.md")])

FENCE = re.compile(r"^(```|~~~)([^\n]*)\n(.*?)^\1[ \t]*$", re.M | re.S)
LINK = re.compile(r"(?<!!)\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
INLINE_CODE = re.compile(r"(?<!`)`([^`]+)`(?!`)")
#: A path inside this repository: a top-level folder, not preceded by another path character
#: (so ``../shared/datasets/x`` and ``trust-report/`` are not read as ours).
REPO_PATH = re.compile(r"(?<![\w./~$-])((?:bench|notebooks|tests|trustslm|probes|datasets|docs|\.ci)/[\w./-]*)")
DOTTED = re.compile(r"(?<![\w./-])(trustslm(?:\.[A-Za-z_]\w*)+)")
SCRIPT = re.compile(r"(?<![\w./-])(?:\.venv/bin/)?python3?\s+((?:bench|notebooks|tests)/[\w./-]+)")
VENV_BIN = re.compile(r"(?<![\w./-])\.venv/bin/([\w.+-]+)")
OPERATORS = {"&&", "||", "|", ";", "&", ">", ">>", "<", "<<", "(", ")", "2>", ">&", "2>&1"}


def doc_id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def strip_fences(text: str) -> str:
    """The text with fenced code blocks blanked (their line count kept): headings and links there
    are not Markdown."""
    return FENCE.sub(lambda m: "\n" * m.group(0).count("\n"), text)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: inline markup dropped, lower case, punctuation removed,
    spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text
    text = re.sub(r"[`*_]", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading in ``text`` (a repeated heading gets ``-1``, ``-2``...)."""
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(strip_fences(text)):
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


# -- links ------------------------------------------------------------------------------------
def link_errors(text: str, source: Path) -> list[str]:
    """Every relative link in ``text`` (a file at ``source``) that does not resolve."""
    errors = []
    for m in LINK.finditer(strip_fences(text)):
        target = m.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):  # https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (source.parent / file_part).resolve() if file_part else source
        if not dest.exists():
            errors.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and ROOT in dest.parents:
            known = anchors(text if dest == source else dest.read_text(encoding="utf-8"))
            if anchor not in known:
                errors.append(f"{target}: no heading #{anchor} in {dest.name}")
    return errors


# -- commands ---------------------------------------------------------------------------------
def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def command_lines(text: str) -> list[str]:
    """Shell command lines shown in ``bash``/``sh``/``console`` fences (``$ `` lines of a console
    block; continuation backslashes joined), and inline code spans that start with ``trustslm ``."""
    lines = []
    for m in FENCE.finditer(text):
        lang = m.group(2).strip().split(" ")[0].lower()
        if lang not in ("bash", "sh", "shell", "console"):
            continue
        body = re.sub(r"\\\n", " ", m.group(3))
        for line in body.splitlines():
            if lang == "console":
                if not line.startswith("$ "):
                    continue
                line = line[2:]
            lines.append(line)
    for m in INLINE_CODE.finditer(strip_fences(text)):
        code = " ".join(m.group(1).split())
        if re.match(r"(\.venv/bin/)?trustslm [a-z]", code):
            lines.append(code)
    return lines


def trustslm_commands(line: str) -> list[list[str]]:
    """The arguments of each ``trustslm`` invocation in one shell line."""
    lex = shlex.shlex(line, posix=True, punctuation_chars=True)
    lex.whitespace_split = True
    try:
        tokens = list(lex)
    except ValueError as exc:  # an unbalanced quote
        raise AssertionError(f"can't split {line!r}: {exc}") from None
    commands, current = [], []
    for tok in [*tokens, ";"]:
        if tok in OPERATORS or set(tok) <= set("&|;<>()"):
            while current and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", current[0]):  # VAR=value cmd
                current.pop(0)
            if current[:1] in (["trustslm"], [".venv/bin/trustslm"]):
                commands.append(current[1:])
            elif current[:3] in (["python", "-m", "trustslm"], [".venv/bin/python", "-m", "trustslm"]):
                commands.append(current[3:])
            current = []
        else:
            current.append(tok)
    return commands


def command_errors(args: list[str], parser: argparse.ArgumentParser | None = None) -> list[str]:
    """What is wrong with ``trustslm ARGS``: an unknown subcommand, a missing one, or a flag the
    chosen subcommand does not take. Usage placeholders (``[--flag X]``, ``...``, ``a|b``) are read
    as their flag."""
    parser = parser or build_parser()
    errors, path = [], ["trustslm"]
    takes_value = False
    for raw in args:
        tok = raw.strip("[]")
        if not tok or tok in ("...", "…"):
            continue
        if tok.startswith("-") and len(tok) > 1 and not re.fullmatch(r"-[\d.]+", tok):
            flag = tok.split("=", 1)[0]
            action = parser._option_string_actions.get(flag)
            if action is None:
                errors.append(f"{' '.join(path)}: no option {flag}")
                takes_value = False
            else:
                takes_value = action.nargs != 0 and "=" not in tok
            continue
        if takes_value:
            takes_value = False
            continue
        sub = _subparsers(parser)
        if sub is not None:
            if tok not in sub.choices:
                errors.append(f"{' '.join(path)}: no subcommand {tok!r} (known: {', '.join(sub.choices)})")
                return errors
            parser = sub.choices[tok]
            path.append(tok)
    if _subparsers(parser) is not None:
        errors.append(f"{' '.join(path)}: a subcommand is missing")
    return errors


# -- paths ------------------------------------------------------------------------------------
def _module_file(parts: list[str]) -> Path | None:
    base = ROOT.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_names(path: Path) -> set[str]:
    """Names a module defines or imports at its top level (inside ``if``/``try`` blocks too)."""
    names: set[str] = set()
    body = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while body:
        node = body.pop()
        if isinstance(node, (ast.If, ast.Try)):
            body.extend(node.body + node.orelse + getattr(node, "finalbody", [])
                        + [n for h in getattr(node, "handlers", []) for n in h.body])
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


def dotted_error(name: str) -> str | None:
    """``trustslm.a.b.Name``: the longest prefix that is a module must exist, and the next part
    (if any) must be defined or imported there. Entry-point group names are not modules."""
    name = name.rstrip(".")
    if name in GROUPS:
        return None
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        module = _module_file(parts[:n])
        if module is None:
            continue
        if n == len(parts) or parts[n] in module_names(module):
            return None
        return f"{name}: {'.'.join(parts[:n])} has no {parts[n]!r}"
    return f"{name}: no such module"


def path_errors(text: str) -> list[str]:
    errors = []
    code = " ".join(INLINE_CODE.findall(strip_fences(text))) + "\n" + "\n".join(
        m.group(3) for m in FENCE.finditer(text))
    for rel in sorted(set(REPO_PATH.findall(code))):
        rel = rel.rstrip(".")
        if "_resources" in rel:  # where the wheel packs probes/ and datasets/
            continue
        if not (ROOT / rel).exists():
            errors.append(f"{rel}: no such path in the repository")
    for rel in sorted(set(SCRIPT.findall(text))):
        if not (ROOT / rel).exists():
            errors.append(f"python {rel}: no such script")
    scripts = Path(sysconfig.get_path("scripts"))
    for name in sorted(set(VENV_BIN.findall(text))):
        if not (scripts / name).exists():
            errors.append(f".venv/bin/{name}: not installed in this environment ({scripts})")
    for name in sorted(set(DOTTED.findall(code))):
        error = dotted_error(name)
        if error:
            errors.append(error)
    return errors


# -- the tests --------------------------------------------------------------------------------
@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_relative_links_resolve(doc):
    assert link_errors(doc.read_text(encoding="utf-8"), doc) == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_commands_name_real_subcommands_and_flags(doc):
    parser = build_parser()
    errors = [f"{line.strip()!r}: {e}" for line in command_lines(doc.read_text(encoding="utf-8"))
              for args in trustslm_commands(line) for e in command_errors(args, parser)]
    assert errors == []


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_named_paths_scripts_and_modules_exist(doc):
    assert path_errors(doc.read_text(encoding="utf-8")) == []


def test_the_docs_are_found_and_hold_what_is_checked():
    assert (ROOT / "docs").is_dir() and len(DOCS) > 6
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(command_lines(readme)) >= 5
    assert "docs/architecture.md" in {m.group(1) for m in LINK.finditer(readme)}


def test_the_checkers_catch_made_up_links_commands_and_paths():
    source = ROOT / "README.md"
    bad_links = "[a](docs/no-such-page.md) [b](docs/gate.md#no-such-heading) [c](#nor-here) [ok](docs/gate.md)"
    assert len(link_errors(bad_links, source)) == 3
    assert link_errors("[gate](docs/gate.md#github-actions) [web](https://example.org/x)", source) == []

    block = ("```bash\ntrustslm audit mock --no-such-flag --out r \\\n  --quick\n"
             "trustslm frobnicate x\n.venv/bin/trustslm probes\necho ok && trustslm gate r --policy p.yaml\n```\n"
             "Inline: `trustslm diff a b --format md --bogus`.\n")
    errors = [e for line in command_lines(block) for args in trustslm_commands(line) for e in command_errors(args)]
    assert errors == ["trustslm audit: no option --no-such-flag",
                      "trustslm: no subcommand 'frobnicate' (known: audit, finetune, mitigate, variants, mitigations, probes, suites, "
                      "scorers, gate, diff, leaderboard, card, report)",
                      "trustslm probes: a subcommand is missing",
                      "trustslm diff: no option --bogus"]
    assert command_errors(["audit", "--prob", "x"]) == ["trustslm audit: no option --prob"]  # no abbreviations

    bad_paths = ("Run `python bench/no_such_bench.py`, see `trustslm/runner/audit.py` and "
                 "`trustslm.report.types.TrustReport`, `trustslm.core.errors.NoSuchError`, and `.venv/bin/no-such-tool`.")
    assert path_errors(bad_paths) == [
        "bench/no_such_bench.py: no such path in the repository",
        "trustslm/runner/audit.py: no such path in the repository",
        "python bench/no_such_bench.py: no such script",
        ".venv/bin/no-such-tool: not installed in this environment (" + sysconfig.get_path("scripts") + ")",
        "trustslm.core.errors.NoSuchError: trustslm.core.errors has no 'NoSuchError'",
        "trustslm.report.types.TrustReport: trustslm.report has no 'types'",
    ]


# -- SECURITY.md: each guarantee names the tests that keep it, and every bound is listed ------------

def _test_names() -> set[str]:
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names |= set(re.findall(r"^\s*def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M))
    return names


def _cited_tests(text: str) -> list[str]:
    return re.findall(r"`(test_\w+\*?)`", text)


def _missing_tests(cited: list[str], names: set[str]) -> list[str]:
    return [c for c in cited if not (any(n.startswith(c[:-1]) for n in names) if c.endswith("*") else c in names)]


def test_security_md_cites_only_tests_that_exist():
    cited = _cited_tests((ROOT / "SECURITY.md").read_text(encoding="utf-8"))
    names = _test_names()
    assert len(cited) > 40
    assert _missing_tests(cited, names) == []
    assert _missing_tests(["test_that_no_one_wrote", "test_nobody_*"], names) == ["test_that_no_one_wrote", "test_nobody_*"]


def test_security_md_lists_every_bound():
    from trustslm.core.limits import LIMITS

    text = (ROOT / "SECURITY.md").read_text(encoding="utf-8")
    assert [name for name in LIMITS if f"`{name}`" not in text] == []
    table = dict(re.findall(r"^\| `(MAX_\w+)` \| ([^|]+) \|", text, re.M))
    assert {name: _quantity(table[name]) for name in LIMITS} == dict(LIMITS)


def _quantity(text: str) -> float:
    """``512 MiB`` -> bytes, ``10 s`` -> 10, ``1 000 000`` -> 1000000."""
    number, _, unit = text.strip().rpartition(" ") if text.strip()[-1].isalpha() else (text.strip(), "", "")
    scale = {"KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "s": 1, "": 1}[unit]
    return float(number.replace(" ", "")) * scale
