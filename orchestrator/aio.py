"""One function for sync and async callers, as Infrahub calls them (`await add_tags(...)`)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from asgiref.sync import sync_to_async

T = TypeVar("T")


def in_event_loop() -> bool:
    """Whether this code runs inside a coroutine (where the ORM must not be called directly,
    and a call must hand back an awaitable). A loop merely marked running in this thread
    with no task in it (a sync library driving one, as Playwright's does) does not count."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    return asyncio.current_task(loop) is not None


def awaitable_in_async(func: Callable[..., T]) -> Callable[..., Any]:
    """Run `func` now when called from sync code; from async code return an awaitable that
    runs it in a worker thread (Django refuses database access on the event loop's thread).
    The run context travels with it (asgiref copies context variables)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if in_event_loop():
            return sync_to_async(func)(*args, **kwargs)
        return func(*args, **kwargs)

    return wrapper
