"""One function for sync and async callers, as Infrahub calls them (`await add_tags(...)`),
and coroutines run to their end from sync code (async steps, async flows and tasks)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from asgiref.sync import async_to_sync, sync_to_async
from django.db import connection

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


async def _await(awaitable: Any) -> Any:
    return await awaitable


def run_sync(awaitable: Any) -> Any:
    """Run a coroutine to its end from sync code. Through asgiref, so the ORM calls it makes
    with `sync_to_async` run back on this thread (its connection, its transaction). A loop
    merely marked running in this thread by a sync library (Playwright's sync API leaves one
    so) is set aside for the call: nothing drives it meanwhile, and asgiref would refuse it.
    Only from inside a coroutine (this thread's loop busy with us) does the coroutine run
    from a helper thread."""
    if not in_event_loop():
        with loop_set_aside():
            return async_to_sync(_await)(awaitable)

    def from_helper() -> Any:
        try:
            return async_to_sync(_await)(awaitable)
        finally:
            connection.close()

    return start_thread(from_helper, "orchestrator-async").result()


@contextlib.contextmanager
def loop_set_aside() -> Iterator[None]:
    """This thread without its idle running loop for the block, then with it again."""
    idle = asyncio._get_running_loop()
    if idle is None:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(idle)


def start_thread(fn: Callable[[], T], name: str) -> concurrent.futures.Future:
    """`fn()` in a new daemon thread (with the caller's context); its concurrent Future."""
    future: concurrent.futures.Future = concurrent.futures.Future()
    context = contextvars.copy_context()

    def target() -> None:
        try:
            future.set_result(context.run(fn))
        except BaseException as error:  # noqa: BLE001 - handed to the waiter
            future.set_exception(error)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future
