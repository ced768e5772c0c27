"""Workflows: the only modules that sequence steps (audit, mitigate, discover, load a model)."""
