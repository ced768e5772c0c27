"""Entry-point target of the built-in probe specs (group ``trustslm.probes``)."""

from trustslm.core.resources import probes_dir

#: The folder the registry walks for ``*/spec.yaml``.
SPECS = probes_dir()
