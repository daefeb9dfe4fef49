"""The lock objects and the registry that hands them out (see the package's docstring)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from types import TracebackType
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper

MAX_NAME_LENGTH = 200
_DEFAULT = object()


class LockTimeout(TimeoutError):
    """The lock stayed held by someone else for longer than the caller would wait."""

    def __init__(self, lock: Lock, timeout: float) -> None:
        super().__init__(
            f"could not take the lock {lock.label!r} within {timeout:g} s: "
            "another holder kept it"
        )
        self.lock = lock


class Lock:
    """One named lock; `with` it or `async with` it (or `acquire()` and `release()`)."""

    def __init__(self, name: str, namespace: str = "", timeout: float | None = None) -> None:
        self.name, self.namespace, self.timeout = name, namespace, timeout
        self.label = f"{namespace}/{name}" if namespace else name
        self.connection: BaseDatabaseWrapper | None = None

    @property
    def key(self) -> int:
        """A signed 64-bit number for the name (PostgreSQL's advisory lock key)."""
        digest = hashlib.blake2b(f"{self.namespace}\x00{self.name}".encode(), digest_size=8)
        return int.from_bytes(digest.digest(), "big", signed=True)

    def locked(self) -> bool:
        """Whether this object holds the lock."""
        return self.connection is not None

    def acquire(self, timeout: Any = _DEFAULT) -> None:
        """Wait for the lock, at most `timeout` seconds (None: as long as it takes)."""
        if self.locked():
            raise RuntimeError(f"the lock {self.label!r} is already held by this object")
        timeout = self.timeout if timeout is _DEFAULT else timeout
        connection = self.open_connection()
        try:
            self.take(connection, timeout)
        except BaseException:
            self.close_connection(connection)
            raise
        self.connection = connection

    def release(self) -> None:
        connection, self.connection = self.connection, None
        if connection is None:
            raise RuntimeError(f"the lock {self.label!r} is not held by this object")
        try:
            self.give_back(connection)
        finally:
            self.close_connection(connection)

    def open_connection(self) -> BaseDatabaseWrapper:
        """A database session of the lock's own, apart from the caller's transaction."""
        connection = connections.create_connection(DEFAULT_DB_ALIAS)
        connection.inc_thread_sharing()  # `async with` may release it from another thread
        return connection

    def close_connection(self, connection: BaseDatabaseWrapper) -> None:
        connection.close()

    def take(self, connection: BaseDatabaseWrapper, timeout: float | None) -> None:
        raise NotImplementedError

    def give_back(self, connection: BaseDatabaseWrapper) -> None:
        raise NotImplementedError

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()

    async def __aenter__(self) -> Lock:
        """Waits in a thread, so the event loop runs on; a waiter cancelled meanwhile gives
        the lock back as soon as its thread got it."""
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(asyncio.to_thread(self.acquire))
        try:
            await asyncio.shield(waiting)
        except asyncio.CancelledError:
            def give_back(done: asyncio.Future) -> None:
                if not done.cancelled() and done.exception() is None:
                    loop.run_in_executor(None, self.release)  # no database on the loop

            waiting.add_done_callback(give_back)
            raise
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await asyncio.to_thread(self.release)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label!r}{' held' if self.locked() else ''}>"


class LockRegistry:
    """Hands out lock objects by name: `registry.get(name=..., namespace=...)`."""

    def get(self, name: str, namespace: str | None = None,
            timeout: Any = _DEFAULT) -> Lock:
        """A new lock object for the name; `timeout` defaults to
        ORCHESTRATOR_LOCK_TIMEOUT_SECONDS (None waits as long as it takes)."""
        for field, value in (("name", name), ("namespace", namespace or "")):
            if not isinstance(value, str) or len(value) > MAX_NAME_LENGTH or "\x00" in value:
                raise ValueError(
                    f"a lock {field} must be a string of at most {MAX_NAME_LENGTH} characters"
                )
        if not name.strip():
            raise ValueError("a lock needs a name")
        if timeout is _DEFAULT:
            timeout = settings.ORCHESTRATOR_LOCK_TIMEOUT_SECONDS
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(
                timeout, int | float) or timeout < 0):
            raise ValueError(f"a lock timeout must be a number of seconds >= 0, not {timeout!r}")
        return self.lock_class()(name, namespace or "", timeout)

    def lock_class(self) -> type[Lock]:
        from orchestrator.lock.advisory import AdvisoryLock
        from orchestrator.lock.table import TableLock

        vendor = connections[DEFAULT_DB_ALIAS].vendor
        return AdvisoryLock if vendor == "postgresql" else TableLock


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
