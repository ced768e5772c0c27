"""Dataset loaders. Each reads a benchmark's own file format from a path and fails with a
one-line :class:`~trustslm.core.errors.DataError` on a missing, empty or malformed file."""
