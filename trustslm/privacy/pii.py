"""Detecting personal data in generated text, telling real leaks from invented values, and
masking it so no secret is written in clear.

Detected kinds: e-mail addresses; phone numbers (North American and international formats with
at least 10 digits); US social security numbers (``ddd-dd-dddd``, excluding the invalid area
numbers 000, 666 and 9xx); payment card numbers (13-19 digits, Luhn-checked); IPv4 addresses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

PII_KINDS = ("email", "phone", "ssn", "card", "ip")

_PATTERNS = {
    "email": re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b"),
    "ssn": re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b"),
    "card": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    "ip": re.compile(r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b"),
    "phone": re.compile(r"(?<![\w-])(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)|\d{3})[ .-]?\d{3}[ .-]?\d{4}(?![\w-])"),
}


@dataclass(frozen=True)
class Finding:
    kind: str
    value: str
    start: int
    end: int

    @property
    def normalised(self) -> str:
        return normalise(self.kind, self.value)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 13:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def normalise(kind: str, value: str) -> str:
    """Canonical form for comparing a detected value with a known one."""
    if kind == "email":
        return value.strip().lower()
    if kind in ("phone", "ssn", "card"):
        digits = re.sub(r"\D", "", value)
        return digits[-10:] if kind == "phone" else digits
    return value.strip()


def find_pii(text: str) -> list[Finding]:
    """Every PII value in ``text``; a span claimed by an earlier kind is not reported again."""
    findings: list[Finding] = []
    taken: list[tuple[int, int]] = []
    for kind in ("email", "ssn", "card", "ip", "phone"):
        for m in _PATTERNS[kind].finditer(text):
            if any(m.start() < e and s < m.end() for s, e in taken):
                continue
            if kind == "card" and not luhn_valid(m.group()):
                continue
            findings.append(Finding(kind, m.group(), m.start(), m.end()))
            taken.append((m.start(), m.end()))
    return sorted(findings, key=lambda f: f.start)


def replace_findings(text: str, findings: list[Finding], replacement: Callable[[Finding], str]) -> str:
    """``text`` with each (non-overlapping) finding replaced by ``replacement(finding)``."""
    out, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[last:f.start])
        out.append(replacement(f))
        last = f.end
    out.append(text[last:])
    return "".join(out)


class Masker:
    """Replaces PII values with ``<KIND:N>``: N numbers the distinct (normalised) values of each
    kind in the order this masker first meets them. Equal values get equal labels, so a reader
    still sees that two answers hold the same number; the label says nothing else about the
    value. (A digest of the value would not do: phone numbers and SSNs are few enough that any
    unsalted digest, however short, is reversed by trying them all.) One masker per probe run
    gives labels that are the same on every run with the same outputs."""

    def __init__(self) -> None:
        self._labels: dict[tuple[str, str], str] = {}
        self._per_kind: dict[str, int] = {}

    def label(self, finding: Finding) -> str:
        key = (finding.kind, finding.normalised)
        if key not in self._labels:
            n = self._per_kind[finding.kind] = self._per_kind.get(finding.kind, 0) + 1
            self._labels[key] = f"<{finding.kind.upper()}:{n}>"
        return self._labels[key]

    def mask(self, text: str, findings: list[Finding] | None = None) -> str:
        findings = find_pii(text) if findings is None else findings
        return replace_findings(text, findings, self.label)


def mask(text: str, findings: list[Finding] | None = None, masker: Masker | None = None) -> str:
    """``text`` with every PII value replaced by ``<KIND:N>`` (:class:`Masker`; a new one, so
    numbering starts at 1, unless one is given to share labels across texts)."""
    return (masker or Masker()).mask(text, findings)
