"""Option checks shared by `@flow` and `@task`, and the two helpers Prefect users import:
`task_input_hash` (a cache key from the task and its inputs) and `exponential_backoff`."""

from __future__ import annotations

import datetime
import hashlib
import inspect
import json
import random
from collections.abc import Callable, Iterable
from typing import Any

from orchestrator.flows.states import TaskRunContext
from orchestrator.injection import StateEncoder

NOT_SET: Any = type("NotSet", (), {"__repr__": lambda self: "NOT_SET"})()


def task_input_hash(context: TaskRunContext, arguments: dict[str, Any]) -> str | None:
    """A cache key from the task's identity, its code and its arguments (None when the
    arguments cannot be written as JSON: such a call is not cached)."""
    task = context.task
    try:
        payload = json.dumps(
            [task.task_key, task.fn.__code__.co_code.hex(), arguments],
            cls=StateEncoder,
            sort_keys=True,
        )
    except (TypeError, ValueError):
        return None
    return hashlib.sha256(payload.encode()).hexdigest()


def exponential_backoff(backoff_factor: float) -> Callable[[int], list[float]]:
    """`retry_delay_seconds=exponential_backoff(10)`: 10, 20, 40, ... seconds."""
    if not isinstance(backoff_factor, int | float) or backoff_factor < 0:
        raise ValueError("backoff_factor must be a number >= 0")

    def delays(retries: int) -> list[float]:
        return [backoff_factor * 2**attempt for attempt in range(retries)]

    return delays


def check_retries(retries: Any) -> int:
    if retries is None:
        return 0
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a whole number >= 0, not {retries!r}")
    return retries


def retry_delays(delay: Any, retries: int) -> list[float]:
    """`retry_delay_seconds` (a number, a list, or a callable of the retry count) as a list;
    a list shorter than `retries` repeats its last delay, as in Prefect."""
    if delay is None:
        return [0.0]
    if callable(delay):
        delay = delay(retries)
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        values: Iterable[Any] = [delay]
    elif isinstance(delay, list | tuple):
        values = delay
    else:
        raise ValueError("retry_delay_seconds must be a number, a list of numbers or a callable")
    result = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ValueError(f"retry_delay_seconds: {value!r} is not a number >= 0")
        result.append(float(value))
    return result or [0.0]


def delay_before_retry(delays: list[float], retry_index: int, jitter: float | None) -> float:
    """The wait before retry number `retry_index` (0-based)."""
    delay = delays[min(retry_index, len(delays) - 1)]
    if jitter:
        delay = max(0.0, delay + random.uniform(-jitter, jitter) * delay)
    return delay


def check_timeout(value: Any, option: str = "timeout_seconds") -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"{option} must be a number > 0, not {value!r}")
    return float(value)


def check_expiration(value: Any) -> datetime.timedelta | None:
    if value is None or isinstance(value, datetime.timedelta):
        return value
    raise ValueError("cache_expiration must be a datetime.timedelta")


def check_hooks(hooks: Any, option: str) -> tuple[Callable[..., Any], ...]:
    if hooks is None:
        return ()
    if callable(hooks):
        hooks = [hooks]
    hooks = tuple(hooks)
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"{option} takes callables, not {hook!r}")
    return hooks


def check_callable(value: Any, option: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{option} must be callable")
    return value


def check_run_name(value: Any, option: str) -> Any:
    if value is None or callable(value) or isinstance(value, str):
        return value
    raise TypeError(f"{option} must be a template string or a callable")


def fill_run_name(template: Any, parameters: dict[str, Any], default: str) -> str:
    """A run name from a template (`"fetch-{url}"`) or a callable, as Prefect fills it."""
    if template is None:
        return default
    if callable(template):
        takes_parameters = bool(inspect.signature(template).parameters)
        name = template(parameters) if takes_parameters else template()
    else:
        try:
            name = template.format(**parameters)
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ValueError(f"cannot fill the run name {template!r}: {error}") from error
    return str(name)[:255] or default
