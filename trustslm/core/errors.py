"""One exception hierarchy, rooted in :class:`TrustSLMError`.

Every error carries the process exit code the CLI maps it to, so the mapping lives in one place.
Each class also subclasses the matching builtin, so ``except ValueError`` keeps working for callers
who don't know trustslm's types.
"""

from __future__ import annotations

#: Exit codes of the ``trustslm`` command (documented in the README).
EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_RUNTIME = 3
EXIT_INTERRUPTED = 130


class TrustSLMError(Exception):
    """Base class of every error trustslm raises on purpose."""

    exit_code = EXIT_RUNTIME


class BadInputError(TrustSLMError, ValueError):
    """The user gave something we can't use: a path, a file, an option, a policy."""

    exit_code = EXIT_BAD_INPUT


class UnsafeModelError(BadInputError):
    """The model directory asks for something we refuse to do (run code, unpickle)."""


class ModelFormatError(BadInputError):
    """The model files are missing, truncated or not what their names say."""


class UnknownNameError(BadInputError, KeyError):
    """An unknown probe, scorer or model kind; the message suggests close names."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class PolicyError(BadInputError):
    """The gate policy file is malformed."""


class DataError(BadInputError):
    """A dataset file is missing, empty or in the wrong format."""


class CapabilityError(TrustSLMError, RuntimeError):
    """A model can't do what a probe needs (recorded as a skip, never raised to the user)."""


class ScorerUnavailableError(TrustSLMError, RuntimeError):
    """A scorer can't load (e.g. its checkpoint is not available offline)."""


class ModelRuntimeError(TrustSLMError, RuntimeError):
    """The model failed while running."""


class ProbeSkipped(TrustSLMError):
    """Raised by a probe that can't run on this model or machine, in any phase; the reason goes in
    the report (status ``skipped``) and the other probes run on."""


class TrustSLMDeprecationWarning(FutureWarning):
    """A name that still works but will go (a former probe id, an option's old name). A
    ``FutureWarning``, so Python shows it by default; the CLI prints it as one line."""


class BackendError(TrustSLMError, RuntimeError):
    """The backend failed while computing (a server that stopped answering, out of memory): exit 3.
    Batches finished before it are in the cache, so ``--resume`` goes on from there."""
