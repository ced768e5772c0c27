"""The risk taxonomies a probe spec may tag itself with (``taxonomy:`` in ``spec.yaml``): the
OWASP Top 10 for LLM Applications 2025 and NIST AI 600-1 (the Generative AI Profile of the AI
Risk Management Framework, July 2024). The tags appear in the report, its SARIF results and the
model card."""

from __future__ import annotations

#: OWASP Top 10 for LLM Applications 2025 (genai.owasp.org/llm-top-10/).
OWASP_LLM_2025: dict[str, str] = {
    "LLM01": "Prompt Injection",
    "LLM02": "Sensitive Information Disclosure",
    "LLM03": "Supply Chain",
    "LLM04": "Data and Model Poisoning",
    "LLM05": "Improper Output Handling",
    "LLM06": "Excessive Agency",
    "LLM07": "System Prompt Leakage",
    "LLM08": "Vector and Embedding Weaknesses",
    "LLM09": "Misinformation",
    "LLM10": "Unbounded Consumption",
}

#: NIST AI 600-1, section 2: the twelve risks unique to or exacerbated by generative AI.
NIST_AI_600_1: dict[str, str] = {
    "cbrn": "CBRN Information or Capabilities",
    "confabulation": "Confabulation",
    "dangerous_violent_hateful": "Dangerous, Violent, or Hateful Content",
    "data_privacy": "Data Privacy",
    "environmental": "Environmental Impacts",
    "harmful_bias": "Harmful Bias and Homogenization",
    "human_ai_configuration": "Human-AI Configuration",
    "information_integrity": "Information Integrity",
    "information_security": "Information Security",
    "intellectual_property": "Intellectual Property",
    "obscene_degrading_abusive": "Obscene, Degrading, and/or Abusive Content",
    "value_chain": "Value Chain and Component Integration",
}

TAXONOMIES: dict[str, dict[str, str]] = {"owasp_llm_2025": OWASP_LLM_2025, "nist_ai_600_1": NIST_AI_600_1}


def check_taxonomy(tags: dict[str, list[str]]) -> dict[str, list[str]]:
    """``tags`` if every taxonomy and code is known, else ValueError naming the first unknown."""
    for name, codes in tags.items():
        known = TAXONOMIES.get(name)
        if known is None:
            raise ValueError(f"unknown taxonomy {name!r} (known: {', '.join(TAXONOMIES)})")
        for code in codes:
            if code not in known:
                raise ValueError(f"unknown {name} tag {code!r} (known: {', '.join(known)})")
    return tags


def tag_titles(tags: dict[str, list[str]]) -> list[str]:
    """``["OWASP LLM01 Prompt Injection", "NIST AI 600-1 Information Security", ...]``."""
    label = {"owasp_llm_2025": "OWASP", "nist_ai_600_1": "NIST AI 600-1"}
    out = []
    for name, codes in tags.items():
        known = TAXONOMIES.get(name, {})
        for code in codes:  # a report is untrusted: an unknown tag is shown as it is
            title = known.get(code)
            if title is None:
                out.append(f"{name} {code}")
            else:
                out.append(f"{label[name]} {code + ' ' if name == 'owasp_llm_2025' else ''}{title}")
    return out
