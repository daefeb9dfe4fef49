"""`@task`: a function whose calls inside a flow run are recorded task runs (DESIGN §4.5)."""

from __future__ import annotations

import datetime
import functools
import inspect
import typing
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.flows.engine import current_turn
from orchestrator.flows.futures import TaskFuture, TaskFutureList
from orchestrator.flows.options import (
    NOT_SET,
    check_callable,
    check_expiration,
    check_hooks,
    check_retries,
    check_run_name,
    check_timeout,
    retry_delays,
)

_OPTIONS = (
    "name", "description", "tags", "version", "cache_key_fn", "cache_expiration",
    "task_run_name", "retries", "retry_delay_seconds", "retry_jitter_factor",
    "timeout_seconds", "log_prints", "refresh_cache", "on_completion", "on_failure",
    "on_running", "retry_condition_fn",
)


class unmapped:  # noqa: N801 - Prefect's name
    """`task.map(items, unmapped(config))`: pass the same value to every mapped call."""

    def __init__(self, value: Any) -> None:
        self.value = value


class Task:
    """A task definition. Called inside a flow run it is a recorded task run; called
    anywhere else it is the plain function."""

    def __init__(
        self,
        fn: Callable[..., Any],
        name: str | None = None,
        description: str | None = None,
        tags: Iterable[str] | None = None,
        version: str | None = None,
        cache_key_fn: Callable[..., str | None] | None = None,
        cache_expiration: datetime.timedelta | None = None,
        task_run_name: str | Callable[..., str] | None = None,
        retries: int | None = None,
        retry_delay_seconds: Any = None,
        retry_jitter_factor: float | None = None,
        timeout_seconds: float | None = None,
        log_prints: bool | None = None,
        refresh_cache: bool | None = None,
        on_completion: Iterable[Callable[..., Any]] | None = None,
        on_failure: Iterable[Callable[..., Any]] | None = None,
        on_running: Iterable[Callable[..., Any]] | None = None,
        retry_condition_fn: Callable[..., bool] | None = None,
    ) -> None:
        if not callable(fn):
            raise TypeError("@task decorates a function")
        self.fn = fn
        functools.update_wrapper(self, fn)
        self.isasync = inspect.iscoroutinefunction(fn)
        self.name = str(name or fn.__name__)
        if not self.name.strip() or "#" in self.name or "/" in self.name:
            raise ValueError(f"task name {self.name!r} must be non-empty, without '#' or '/'")
        self.description = description or inspect.getdoc(fn) or ""
        self.tags = tuple(tags or ())
        self.version = version
        self.task_key = f"{fn.__module__}.{fn.__qualname__}"
        self.cache_key_fn = check_callable(cache_key_fn, "cache_key_fn")
        self.cache_expiration = check_expiration(cache_expiration)
        self.task_run_name = check_run_name(task_run_name, "task_run_name")
        self.retries = check_retries(retries)
        retry_delays(retry_delay_seconds, self.retries)  # refuses a bad value now
        self.retry_delay_seconds = retry_delay_seconds
        self.retry_jitter_factor = retry_jitter_factor
        self.timeout_seconds = check_timeout(timeout_seconds)
        self.log_prints = log_prints
        self.refresh_cache = bool(refresh_cache)
        self.on_completion = check_hooks(on_completion, "on_completion")
        self.on_failure = check_hooks(on_failure, "on_failure")
        self.on_running = check_hooks(on_running, "on_running")
        self.retry_condition_fn = check_callable(retry_condition_fn, "retry_condition_fn")
        self.signature = inspect.signature(fn)
        try:
            hints = typing.get_type_hints(fn)
        except NameError:
            hints = {}
        self.return_annotation = hints.get("return", inspect.Parameter.empty)
        self._options = {option: getattr(self, option) for option in _OPTIONS}
        self._options.update(on_completion=on_completion, on_failure=on_failure,
                             on_running=on_running, refresh_cache=refresh_cache)

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def with_options(self, **changes: Any) -> Task:
        """A copy of the task with some options changed (the others kept)."""
        unknown = sorted(set(changes) - set(_OPTIONS))
        if unknown:
            raise TypeError(f"with_options: unknown option(s) {', '.join(unknown)}")
        options = {**self._options, **{k: v for k, v in changes.items() if v is not NOT_SET}}
        return Task(self.fn, **options)

    def __get__(self, instance: Any, owner: Any) -> Any:
        """A task defined in a class binds like a method."""
        if instance is None:
            return self
        return functools.partial(self.__call__, instance)

    def __call__(self, *args: Any, return_state: bool = False, wait_for: Any = None,
                 **kwargs: Any) -> Any:
        turn = current_turn()
        if turn is None:
            return self.fn(*args, **kwargs)
        return turn.call(self, args, kwargs, return_state, wait_for)

    def submit(self, *args: Any, wait_for: Any = None, **kwargs: Any) -> TaskFuture:
        """Run the task concurrently (in the flow run's thread pool); a future of its run."""
        turn = current_turn()
        if turn is None:
            raise RuntimeError(f"{self.name}.submit() needs a running flow: call it in a @flow")
        return turn.submit(self, args, kwargs, wait_for)

    def map(self, *args: Any, wait_for: Any = None, **kwargs: Any) -> TaskFutureList:
        """One submitted run per item of the iterable arguments (`unmapped(x)` stays whole)."""
        bound = self.signature.bind_partial(*args, **kwargs)
        mapped: dict[str, list[Any]] = {}
        static: dict[str, Any] = {}
        for name, value in bound.arguments.items():
            if isinstance(value, unmapped):
                static[name] = value.value
            elif isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
                static[name] = value
            else:
                mapped[name] = list(value)
        if not mapped:
            raise TypeError(f"{self.name}.map() needs at least one iterable argument")
        lengths = {name: len(values) for name, values in mapped.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{self.name}.map(): the iterables differ in length: {lengths}")
        count = next(iter(lengths.values()))
        return TaskFutureList(
            self.submit(**static, **{name: values[index] for name, values in mapped.items()},
                        wait_for=wait_for)
            for index in range(count)
        )


def task(__fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """`@task` or `@task(name=..., retries=..., ...)` (Prefect's options, DESIGN §4.5)."""
    if __fn is not None:
        return Task(__fn, **options)
    return lambda fn: Task(fn, **options)
