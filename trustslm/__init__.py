"""trustslm: audit the trustworthiness of small language models.

Importing trustslm is cheap: torch and transformers load only when a model does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trustslm._version import __version__

if TYPE_CHECKING:
    from trustslm.api import (
        audit,
        check_scorer,
        compare,
        evaluate_gate,
        finetune,
        leaderboard,
        list_mitigations,
        list_probes,
        list_scorers,
        load_report,
        mitigate,
        render_report,
        update_card,
        variants,
    )
    from trustslm.core.types import TrustReport

__all__ = ["__version__", "audit", "check_scorer", "compare", "evaluate_gate", "finetune", "leaderboard",
           "list_mitigations", "list_probes", "list_scorers", "load_report", "mitigate", "render_report", "update_card",
           "variants", "TrustReport"]
_API = frozenset(__all__) - {"__version__", "TrustReport"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from trustslm import api

        return getattr(api, name)
    if name == "TrustReport":
        from trustslm.core.types import TrustReport

        return TrustReport
    raise AttributeError(f"module 'trustslm' has no attribute {name!r}")
