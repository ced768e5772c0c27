"""Loaders of the bias benchmarks' own formats (each also reads the project's default sets,
which are written in those formats) and of hub rows mapped to the same items.

* StereoSet (Nadeem et al. 2021): the original ``dev.json`` (``{"data": {"intrasentence": [...],
  "intersentence": [...]}}`` with ``sentences[].gold_label``), its flat JSONL form (``type``,
  ``target``, ``bias_type``, ``context``, ``stereotype``, ``anti-stereotype``, ``unrelated``), or
  the hub's ``McGill-NLP/stereoset`` rows.
* WinoBias (Zhao et al. 2018): the original ``{pro,anti}_stereotyped_type{1,2}.txt.*`` files
  (numbered lines, the mention and its pronoun in brackets) or the project's JSONL
  (``sentence``, ``pronoun``, ``referent``, ``other``, ``type``, ``stereotype``).
* BBQ (Parrish et al. 2022): its JSONL schema (``context``, ``question``, ``ans0..2``, ``label``,
  ``answer_info``, ``additional_metadata.stereotyped_groups``, ...), from files or the hub.
* Counterfactual templates: the project's JSON (``axes`` of group terms, ``templates`` with
  ``{group}``) or BOLD's prompt files (``{domain: {group: {name: [prompts]}}}``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from trustslm.core.errors import DataError
from trustslm.data.files import read_json, read_jsonl, read_text, require_fields
from trustslm.data.hub import is_hub, load_hub_rows

# -- StereoSet ----------------------------------------------------------------------------------
STEREOSET_LABELS = ("stereotype", "anti-stereotype", "unrelated")
_HUB_GOLD = {0: "anti-stereotype", 1: "stereotype", 2: "unrelated"}


def load_stereoset(path: Path | str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if is_hub(str(path)):
        return _stereoset_from_nested(load_hub_rows(str(path), default_split="validation"), str(path)), "hub"
    path = Path(path)
    if fmt == "auto":
        fmt = "stereoset_json" if path.suffix.lower() == ".json" else "stereoset_flat_jsonl"
    if fmt == "stereoset_json":
        try:
            data = read_json(path)
            nested = [dict(ex, type=kind) for kind in ("intrasentence", "intersentence")
                      for ex in data["data"].get(kind, [])]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DataError(f"{path} is not StereoSet's JSON (expected data.intrasentence / data.intersentence)") from None
        return _stereoset_from_nested(nested, str(path)), fmt
    if fmt != "stereoset_flat_jsonl":
        raise DataError(f"unknown StereoSet format {fmt!r} (known: stereoset_json, stereoset_flat_jsonl)")
    rows = read_jsonl(path)
    require_fields(path, rows, ("type", "target", "bias_type", "context", *STEREOSET_LABELS))
    items = []
    for n, r in enumerate(rows):
        if r["type"] not in ("intrasentence", "intersentence"):
            raise DataError(f"{path} item {n + 1}: type must be intrasentence or intersentence")
        items.append({"id": str(r.get("id", n)), **{k: str(r[k]) for k in ("type", "target", "bias_type", "context")},
                      **{k: str(r[k]) for k in STEREOSET_LABELS}})
    return items, fmt


def _stereoset_from_nested(examples: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    items = []
    for n, ex in enumerate(examples):
        sentences = ex.get("sentences")
        if isinstance(sentences, dict):  # the hub's columnar form
            sentences = [{"sentence": s, "gold_label": g} for s, g in zip(sentences["sentence"], sentences["gold_label"])]
        by_label = {}
        for s in sentences or []:
            label = _HUB_GOLD.get(s.get("gold_label"), s.get("gold_label"))
            by_label[label] = s.get("sentence")
        if set(STEREOSET_LABELS) - set(by_label):
            raise DataError(f"{where} example {n + 1}: needs a stereotype, an anti-stereotype and an unrelated sentence")
        items.append({"id": str(ex.get("id", n)), "type": ex["type"] if "type" in ex else "intrasentence",
                      "target": str(ex["target"]), "bias_type": str(ex["bias_type"]), "context": str(ex["context"]),
                      **{k: str(by_label[k]) for k in STEREOSET_LABELS}})
    if not items:
        raise DataError(f"{where} holds no StereoSet examples")
    return items


# -- WinoBias ----------------------------------------------------------------------------------
_BRACKETS = re.compile(r"\[([^\]]+)\]")
_PRONOUNS = {"he", "she", "him", "her", "his", "hers", "himself", "herself"}


def load_winobias(path: Path | str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if is_hub(str(path)):
        raise DataError(f"{path}: WinoBias is read from its original text files or JSONL, not from the hub")
    path = Path(path)
    if path.is_dir():  # the original release: all four test files (pro/anti x type 1/2)
        files = sorted(path.glob("*_stereotyped_type[12].txt.test"))
        if not files:
            raise DataError(f"{path} holds no WinoBias files ({{pro,anti}}_stereotyped_type{{1,2}}.txt.test)")
        return [item for f in files for item in _winobias_txt(f)], "winobias_txt"
    if fmt == "auto":
        fmt = "jsonl" if path.suffix.lower() == ".jsonl" else "winobias_txt"
    if fmt == "jsonl":
        rows = read_jsonl(path)
        require_fields(path, rows, ("sentence", "pronoun", "referent", "other", "type", "stereotype"))
        return [{"id": str(r.get("id", n)), "sentence": r["sentence"], "pronoun": r["pronoun"],
                 "referent": r["referent"], "other": r["other"], "type": int(r["type"]),
                 "stereotype": r["stereotype"]} for n, r in enumerate(rows)], fmt
    if fmt != "winobias_txt":
        raise DataError(f"unknown WinoBias format {fmt!r} (known: winobias_txt, jsonl)")
    return _winobias_txt(path), fmt


def _winobias_txt(path: Path) -> list[dict[str, Any]]:
    name = path.name
    m = re.match(r"(pro|anti)_stereotyped_type([12])", name)
    if not m:
        raise DataError(f"{path}: a WinoBias text file is named {{pro,anti}}_stereotyped_type{{1,2}}.txt.*")
    stereotype, kind = m.group(1), int(m.group(2))
    occupations = _occupations_beside(path)
    items = []
    for n, line in enumerate(read_text(path).splitlines(), start=1):
        line = re.sub(r"^\d+\s+", "", line.strip())
        if not line:
            continue
        spans = _BRACKETS.findall(line)
        mentions = [s for s in spans if s.lower() not in _PRONOUNS]
        pronouns = [s for s in spans if s.lower() in _PRONOUNS]
        if len(mentions) != 1 or not pronouns:
            raise DataError(f"{path} line {n}: expected one [mention] and a [pronoun] in brackets")
        sentence = _BRACKETS.sub(lambda x: x.group(1), line)
        referent = re.sub(r"^(the|a|an)\s+", "", mentions[0], flags=re.I)
        other = _other_occupation(sentence, referent, occupations)
        if other is None:
            raise DataError(f"{path} line {n}: can't find the second occupation (give male_occupations.txt and "
                            "female_occupations.txt beside the file)")
        items.append({"id": f"{name}:{n}", "sentence": sentence, "pronoun": pronouns[0].lower(), "referent": referent,
                      "other": other, "type": kind, "stereotype": stereotype})
    return items


def _occupations_beside(path: Path) -> list[str]:
    found: list[str] = []
    for name in ("male_occupations.txt", "female_occupations.txt"):
        f = path.parent / name
        if f.is_file():
            found += [w.strip() for w in f.read_text(encoding="utf-8").splitlines() if w.strip()]
    return sorted(found, key=len, reverse=True)  # longest first: "construction worker" before "worker"


def _other_occupation(sentence: str, referent: str, occupations: list[str]) -> str | None:
    low = sentence.lower()
    for occ in occupations:
        if occ.lower() != referent.lower() and re.search(rf"\bthe {re.escape(occ.lower())}\b", low):
            return occ
    for m in re.finditer(r"\b[Tt]he (\w+)", sentence):  # no lists: the first other "the X"
        if m.group(1).lower() != referent.split()[-1].lower() and m.group(1).lower() not in referent.lower():
            return m.group(1)
    return None


# -- BBQ ---------------------------------------------------------------------------------------
#: BBQ's category files; a folder is read as the ones of these it holds.
BBQ_FILES = ("Age", "Disability_status", "Gender_identity", "Nationality", "Physical_appearance", "Race_ethnicity",
             "Race_x_SES", "Race_x_gender", "Religion", "SES", "Sexual_orientation")
BBQ_FIELDS = ("context", "question", "ans0", "ans1", "ans2", "label", "context_condition", "question_polarity",
              "answer_info", "additional_metadata")


def load_bbq(path: Path | str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    if is_hub(str(path)):
        rows, fmt, where = load_hub_rows(str(path)), "hub", str(path)
    else:
        path = Path(path)
        if fmt not in ("auto", "bbq_jsonl"):
            raise DataError(f"unknown BBQ format {fmt!r} (known: bbq_jsonl)")
        files = [path / f"{n}.jsonl" for n in BBQ_FILES if (path / f"{n}.jsonl").is_file()] if path.is_dir() else [path]
        if not files:
            raise DataError(f"{path} holds none of BBQ's category files ({', '.join(BBQ_FILES[:3])}.jsonl ...)")
        rows, fmt, where = [r for f in files for r in read_jsonl(f)], "bbq_jsonl", str(path)
    items = []
    for n, r in enumerate(rows, start=1):
        missing = [f for f in BBQ_FIELDS if f not in r]
        if missing:
            raise DataError(f"{where} item {n}: missing field(s) {', '.join(missing)} (is this BBQ's full schema?)")
        try:
            info = [r["answer_info"][f"ans{i}"] for i in range(3)]
            stereotyped = [str(g).lower() for g in r["additional_metadata"]["stereotyped_groups"]]
            label = int(r["label"])
        except (KeyError, TypeError, ValueError):
            raise DataError(f"{where} item {n}: malformed answer_info, stereotyped_groups or label") from None
        unknown = [i for i in range(3) if str(info[i][1]).lower() == "unknown"]
        target = [i for i in range(3) if i not in unknown and
                  (str(info[i][1]).lower() in stereotyped or str(info[i][0]).lower() in stereotyped)]
        if len(unknown) != 1 or len(target) != 1 or label not in (0, 1, 2):
            raise DataError(f"{where} item {n}: needs one 'unknown' answer and one answer from the stereotyped group")
        items.append({"id": str(r.get("example_id", n - 1)), "category": str(r.get("category", "unknown")),
                      "context": r["context"], "question": r["question"],
                      "answers": [r["ans0"], r["ans1"], r["ans2"]], "label": label,
                      "condition": r["context_condition"], "polarity": r["question_polarity"],
                      "unknown": unknown[0], "target": target[0]})
    if not items:
        raise DataError(f"{where} holds no BBQ items")
    return items, fmt


# -- counterfactual templates ------------------------------------------------------------------
def load_counterfactual(path: Path | str, fmt: str = "auto") -> tuple[list[dict[str, Any]], str]:
    """Items ``{"id", "template_id", "axis", "group", "prompt"}``: every template filled with every
    group of its axis (templates), or every prompt of every group (BOLD). A folder is read as BOLD's
    ``prompts/`` folder: every ``*_prompt.json`` in it, each file an axis."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*_prompt.json"))
        if not files or fmt not in ("auto", "bold"):
            raise DataError(f"{path} is a folder but holds no BOLD prompt files (*_prompt.json)")
        return [item for f in files for item in load_counterfactual(f, "bold")[0]], "bold"
    data = read_json(path)
    if fmt == "auto":
        fmt = "templates" if isinstance(data, dict) and "templates" in data else "bold"
    items = []
    if fmt == "templates":
        try:
            axes = data["axes"]
            for t in data["templates"]:
                if t["template"].count("{group}") != 1:
                    raise DataError(f"{path}: template {t['id']} must contain {{group}} exactly once")
                for g in axes[t["axis"]]:
                    items.append({"id": f"{t['id']}:{g}", "template_id": t["id"], "axis": t["axis"], "group": g,
                                  "prompt": t["template"].replace("{group}", g)})
        except (KeyError, TypeError, AttributeError):
            raise DataError(f"{path}: expected {{'axes': {{axis: [groups]}}, 'templates': [{{id, axis, template}}]}}") from None
    elif fmt == "bold":
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected BOLD's {{group: {{name: [prompts]}}}}")
        axis = path.stem.replace("_prompt", "")
        for group, names in data.items():
            if not isinstance(names, dict):
                raise DataError(f"{path}: expected BOLD's {{group: {{name: [prompts]}}}}")
            for name, prompts in names.items():
                for j, p in enumerate(prompts if isinstance(prompts, list) else []):
                    items.append({"id": f"{group}:{name}:{j}", "template_id": f"{name}:{j}", "axis": axis,
                                  "group": group, "prompt": str(p)})
    else:
        raise DataError(f"unknown counterfactual format {fmt!r} (known: templates, bold)")
    if not items:
        raise DataError(f"{path} holds no prompts")
    return items, fmt
