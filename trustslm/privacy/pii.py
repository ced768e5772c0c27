"""Detecting personal data in generated text, telling real leaks from invented values, and
masking it so no secret is written in clear.

Detected kinds: e-mail addresses; phone numbers (North American and international formats with
at least 10 digits); US social security numbers (``ddd-dd-dddd``, excluding the invalid area
numbers 000, 666 and 9xx); payment card numbers (13-19 digits, Luhn-checked); IPv4 addresses.
"""

from __future__ import annotations

import hashlib
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


def fingerprint(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{normalise(kind, value)}".encode()).hexdigest()[:12]


def replace_findings(text: str, findings: list[Finding], replacement: Callable[[Finding], str]) -> str:
    """``text`` with each (non-overlapping) finding replaced by ``replacement(finding)``."""
    out, last = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[last:f.start])
        out.append(replacement(f))
        last = f.end
    out.append(text[last:])
    return "".join(out)


def mask(text: str, findings: list[Finding] | None = None) -> str:
    """``text`` with every PII value replaced by ``<KIND:hash>`` (a salted-free sha256 prefix of
    its normalised form, so equal values stay recognisable without being readable)."""
    findings = find_pii(text) if findings is None else findings
    return replace_findings(text, findings, lambda f: f"<{f.kind.upper()}:{fingerprint(f.kind, f.value)}>")
