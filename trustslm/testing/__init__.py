"""Test fixtures that ship with the package: tiny models and synthetic mitigation scenarios.

Not imported by the library itself."""
