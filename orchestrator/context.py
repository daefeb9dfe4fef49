"""The run context: which process, and which step or task of it, this code runs for.

The runner sets it around each step it executes (`with running(...)`), and the flow runner
around each flow and task run, so that code deep inside a step can act on "the current
run" without being handed its id: `add_tags(branches=["main"])` tags it,
`get_workflow().execute_workflow(...)` starts its runs as children of it.

It is a `contextvars.ContextVar`: each thread and each asyncio task sees its own value, and
asyncio tasks inherit their creator's. A thread pool does not copy it by itself: submit work
as `pool.submit(contextvars.copy_context().run, fn, ...)` (asgiref's `sync_to_async` does
copy it).
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager


class NoRunningProcess(RuntimeError):
    """Code that needs the current run was called outside any step or task."""


@dataclasses.dataclass(frozen=True)
class RunContext:
    """The run a piece of code executes for; `step_name` is the step or task in it."""

    process_id: str
    workflow_name: str = ""
    step_name: str = ""
    # The step's index in the process's plan (None for what has no fixed place, a task run).
    position: int | None = None
    # Numbers the child runs started during this step, so a re-run of the step (after a
    # failure or a dead worker) finds the children its earlier attempt started.
    _calls: Iterator[int] = dataclasses.field(
        default_factory=itertools.count, repr=False, compare=False
    )

    def next_call_key(self) -> str:
        """A key for the next child run started in this step, the same on every attempt
        (`<position>:<step>:<n>`; a flow's task run has no position: `<task key>:<n>`)."""
        place = f"{self.position}:" if self.position is not None else ""
        return f"{place}{self.step_name}:{next(self._calls)}"[:255]


_current: contextvars.ContextVar[RunContext | None] = contextvars.ContextVar(
    "orchestrator_run", default=None
)


def current_run() -> RunContext | None:
    """The run this code executes for, or None outside any step or task."""
    return _current.get()


def current_process_id() -> str | None:
    run = _current.get()
    return run.process_id if run is not None else None


def require_current_run(purpose: str) -> RunContext:
    """The current run, or a clear error saying `purpose` needs one."""
    run = _current.get()
    if run is None:
        raise NoRunningProcess(
            f"{purpose} needs a running process: call it from a step or a task "
            "(or pass process_id=...)"
        )
    return run


@contextmanager
def running(
    process_id: object,
    workflow_name: str = "",
    step_name: str = "",
    position: int | None = None,
) -> Iterator[RunContext]:
    """Make `process_id` (and its step `step_name`) the current run inside the block."""
    run = RunContext(str(process_id), workflow_name, step_name, position)
    token = _current.set(run)
    try:
        yield run
    finally:
        _current.reset(token)


__all__ = [
    "NoRunningProcess",
    "RunContext",
    "current_process_id",
    "current_run",
    "require_current_run",
    "running",
]
