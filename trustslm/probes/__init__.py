"""Probe kinds (the code) and the base class they share. Probe *specs* (id, dimension, version,
defaults, scoring ranges, card) are YAML files under the top-level ``probes/`` folder."""
