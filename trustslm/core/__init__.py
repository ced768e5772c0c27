"""The core: request, result and report types, specs, errors, hashing, the plugin registry.

It imports nothing else of trustslm; every other layer may import it."""
