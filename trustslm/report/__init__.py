"""The trust report: typed results, their JSON Schema, and renderers (Markdown, HTML, terminal)."""

from trustslm.core.types import SCHEMA_VERSION, TrustReport

__all__ = ["SCHEMA_VERSION", "TrustReport"]
