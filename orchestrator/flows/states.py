"""What hooks, `return_state=True` and futures hand back: Prefect-style states and run records.

These are plain values built from the process and its step log, never database rows: a hook
receives `(flow, flow_run, state)` or `(task, task_run, state)` as it does in Prefect.
"""

from __future__ import annotations

import dataclasses
import datetime
from enum import StrEnum
from typing import Any

from django.utils import timezone


class StateType(StrEnum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    CRASHED = "CRASHED"
    PAUSED = "PAUSED"


@dataclasses.dataclass(frozen=True)
class State:
    """Where a flow or task run ended (or stands); `data` is the result or the exception."""

    type: StateType
    name: str = ""
    message: str = ""
    data: Any = None
    timestamp: datetime.datetime = dataclasses.field(default_factory=timezone.now)

    def is_completed(self) -> bool:
        return self.type == StateType.COMPLETED

    def is_failed(self) -> bool:
        return self.type == StateType.FAILED

    def is_crashed(self) -> bool:
        return self.type == StateType.CRASHED

    def is_cancelled(self) -> bool:
        return self.type == StateType.CANCELLED

    def is_running(self) -> bool:
        return self.type == StateType.RUNNING

    def is_final(self) -> bool:
        return self.type not in (StateType.PENDING, StateType.RUNNING, StateType.PAUSED)

    def result(self, raise_on_failure: bool = True) -> Any:
        """The run's return value; for a failed run its exception is raised (or returned)."""
        if isinstance(self.data, BaseException) and raise_on_failure:
            raise self.data
        return self.data

    def __repr__(self) -> str:
        return f"{self.name or self.type.value.title()}({self.message!r})"


def Completed(data: Any = None, name: str = "Completed", message: str = "") -> State:  # noqa: N802
    return State(StateType.COMPLETED, name=name, message=message, data=data)


def Failed(error: BaseException, name: str = "Failed") -> State:  # noqa: N802
    return State(StateType.FAILED, name=name, message=describe_error(error), data=error)


def describe_error(error: BaseException) -> str:
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


@dataclasses.dataclass(frozen=True)
class FlowRun:
    """One flow run: its process."""

    id: str
    name: str
    flow_name: str
    parameters: dict[str, Any]
    tags: tuple[str, ...] = ()
    parent_id: str | None = None
    run_count: int = 1


@dataclasses.dataclass(frozen=True)
class TaskRun:
    """One task call inside a flow run; `task_key` names it (task name and call order)."""

    name: str
    task_key: str
    flow_run_id: str
    run_count: int
    parameters: dict[str, Any]
    tags: tuple[str, ...] = ()
    cache_key: str | None = None


@dataclasses.dataclass(frozen=True)
class TaskRunContext:
    """What a `cache_key_fn` receives first, as in Prefect: the task and its run."""

    task: Any
    task_run: TaskRun
    parameters: dict[str, Any]
