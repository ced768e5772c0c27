"""Render a model's chat template within bounds, so a hostile template fails alone.

A chat template is Jinja code shipped with the model. transformers renders it in Jinja's
``ImmutableSandboxedEnvironment``, which stops attribute tricks but not a template that raises
(``raise_exception``, an ``{% include %}`` with no loader) or that loops for hours (nested loops
over ``range(100000)``). Here every rendering runs under a step budget: a trace function, set
for the rendering only, counts the template's line events and every Python call made while it
renders, and stops it past :data:`MAX_TEMPLATE_STEPS` steps (a deterministic bound: the same
template and messages stop at the same place on every machine) or :data:`MAX_TEMPLATE_SECONDS`
seconds. The rendering then fails with :class:`ChatTemplateError`, one line.

Why a budget in the same thread rather than a thread or a process with a timeout: a Python
thread can't be stopped, so it would keep burning the CPU (and holding the GIL) after its
timeout; a process per rendering costs tens of milliseconds and thousands of renderings are
normal. The budget stops the template where it is, at the cost of slowing the rendering (a few
hundred microseconds for an ordinary template).

:class:`~trustslm.models.hf.HFModel` renders the template once when it loads, on a fixed
one-message conversation: a template that fails there is not used (the model loses the
``chat_template`` capability, with a warning), so probes that need it are skipped and the others
run. A template that fails only on some messages raises :class:`ChatTemplateError` for the
requests that carry them. Not covered: a single C-level operation (``'x' * 10**10``) is one step, so memory is bounded only by the OS.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from trustslm.core.errors import ModelRuntimeError, ProbeSkipped
from trustslm.core.limits import (  # noqa: F401  (every bound is in core/limits.py)
    MAX_RENDERED_CHARS,
    MAX_TEMPLATE_SECONDS,
    MAX_TEMPLATE_STEPS,
)

#: The conversation a template is tried on when the model loads.
PROBE_CONVERSATION = ({"role": "user", "content": "Hello."},)


class ChatTemplateError(ProbeSkipped, ModelRuntimeError):
    """The model's chat template failed, or ran past its bounds, on a conversation. A
    :class:`~trustslm.core.errors.ProbeSkipped`: the probe whose prompt it could not render can't
    run on this model, and where the engine attributes the failure to that probe (an adaptive
    probe's own loop does) the other probes keep their results."""


class _OutOfBudget(BaseException):
    """Raised inside the template by the trace function; a BaseException, so no ``except
    Exception`` between here and the template can swallow it."""


class _Budget:
    """A trace function counting steps; past the budget it raises inside the traced frame."""

    def __init__(self, steps: int, seconds: float):
        self.left, self.deadline, self.seconds = steps, time.perf_counter() + seconds, seconds
        self.steps = steps

    def tick(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise _OutOfBudget(f"more than {self.steps} steps")
        if not self.left & 1023 and time.perf_counter() > self.deadline:
            raise _OutOfBudget(f"more than {self.seconds:g} s")

    def on_call(self, frame: Any, event: str, arg: Any):  # the global trace function
        self.tick()
        return self.on_line if frame.f_code.co_filename == "<template>" else None

    def on_line(self, frame: Any, event: str, arg: Any):  # the template's own frames
        if event == "line":
            self.tick()
        return self.on_line


def bounded_render(render: Callable[[], Any], *, steps: int = MAX_TEMPLATE_STEPS,
                   seconds: float = MAX_TEMPLATE_SECONDS) -> str:
    """``render()`` (which renders a chat template to text) within the step and time budget; any
    failure, or a text longer than :data:`MAX_RENDERED_CHARS`, is a one-line :class:`ChatTemplateError`."""
    budget = _Budget(steps, seconds)
    previous = sys.gettrace()
    sys.settrace(budget.on_call)
    try:
        text = render()
    except _OutOfBudget as exc:
        raise ChatTemplateError(f"the model's chat template ran past its bound ({exc})") from None
    except Exception as exc:  # a template can raise anything the sandbox or Jinja raises
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ChatTemplateError(f"the model's chat template failed: {type(exc).__name__}: {first}") from None
    finally:
        sys.settrace(previous)
    if not isinstance(text, str):
        raise ChatTemplateError(f"the model's chat template gave {type(text).__name__}, not text")
    if len(text) > MAX_RENDERED_CHARS:
        raise ChatTemplateError(f"the model's chat template gave {len(text)} characters, more than "
                                f"the {MAX_RENDERED_CHARS} allowed")
    return text
