"""Named locks (orchestrator.lock), in-process: threads with their own database sessions
stand in for workers; the real-worker version is tests/integration/test_lock_workers.py."""

from __future__ import annotations

import asyncio
import datetime
import threading
import time

import pytest
from django.db import connection, connections
from django.utils import timezone

from orchestrator.lock import LockTimeout, registry
from orchestrator.lock.table import TableLock
from orchestrator.models import NamedLock

pytestmark = pytest.mark.django_db(transaction=True)


def in_threads(count: int, work) -> list:
    """Run `work(index)` in `count` threads at once; return what each returned or raised."""
    barrier = threading.Barrier(count)
    outcomes: list = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=10)
            outcomes[index] = work(index)
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcomes[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_one_holder_at_a_time_for_one_name():
    inside, overlaps, entries = [0], [], []
    guard = threading.Lock()

    def work(index: int) -> None:
        for _ in range(10):
            with registry.get(name="router-1", namespace="push", timeout=30):
                with guard:
                    inside[0] += 1
                    overlaps.append(inside[0])
                    entries.append(index)
                time.sleep(0.002)
                with guard:
                    inside[0] -= 1

    outcomes = in_threads(4, work)
    assert outcomes == [None] * 4
    assert len(entries) == 40 and max(overlaps) == 1


def test_different_names_and_namespaces_are_held_at_once():
    both_inside = threading.Barrier(3, timeout=10)

    def work(index: int) -> str:
        name, namespace = [("a", "x"), ("b", "x"), ("a", "y")][index]
        with registry.get(name=name, namespace=namespace, timeout=5):
            both_inside.wait()  # only passes if all three hold their lock together
        return name

    assert in_threads(3, work) == ["a", "b", "a"]


def test_waiting_past_the_timeout_is_a_clear_error():
    holder = registry.get(name="busy", namespace="ns")
    holder.acquire()
    try:
        started = time.monotonic()
        with pytest.raises(LockTimeout, match=r"could not take the lock 'ns/busy' within 0.3 s"):
            registry.get(name="busy", namespace="ns", timeout=0.3).acquire()
        assert time.monotonic() - started < 5
        with pytest.raises(LockTimeout):
            registry.get(name="busy", namespace="ns", timeout=0).acquire()
    finally:
        holder.release()
    with registry.get(name="busy", namespace="ns", timeout=0):  # free again
        pass


def test_a_lock_object_is_not_taken_twice_and_not_given_back_unheld():
    lock = registry.get(name="twice")
    with lock:
        assert lock.locked()
        with pytest.raises(RuntimeError, match="already held"):
            lock.acquire()
    assert not lock.locked()
    with pytest.raises(RuntimeError, match="not held"):
        lock.release()


def test_an_exception_inside_gives_the_lock_back():
    with pytest.raises(ZeroDivisionError), registry.get(name="boom"):
        raise ZeroDivisionError
    with registry.get(name="boom", timeout=0):
        pass


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "needs a name"),
        ({"name": "   "}, "needs a name"),
        ({"name": 42}, "name must be a string"),
        ({"name": "x" * 201}, "at most 200 characters"),
        ({"name": "a\x00b"}, "name must be a string"),
        ({"name": "ok", "namespace": "n\x00"}, "namespace must be a string"),
        ({"name": "ok", "timeout": -1}, "timeout must be a number of seconds"),
        ({"name": "ok", "timeout": "5"}, "timeout must be a number of seconds"),
    ],
)
def test_bad_lock_arguments_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        registry.get(**kwargs)


def test_async_with_waits_without_blocking_the_event_loop():
    order: list[str] = []

    async def holder() -> None:
        async with registry.get(name="async", timeout=10):
            order.append("first in")
            await asyncio.sleep(0.3)
            order.append("first out")

    async def waiter() -> None:
        await asyncio.sleep(0.1)
        async with registry.get(name="async", timeout=10):
            order.append("second in")

    async def ticker() -> None:  # keeps running while the waiter waits in its thread
        for _ in range(3):
            await asyncio.sleep(0.05)
            order.append("tick")

    async def main() -> None:
        await asyncio.gather(holder(), waiter(), ticker())

    outcome = in_threads(1, lambda _: asyncio.run(main()))
    assert outcome == [None]
    assert order.index("first out") < order.index("second in")
    assert order.count("tick") == 3 and order.index("tick") < order.index("first out")


def test_a_waiter_cancelled_in_async_code_leaves_the_lock_free():
    async def main() -> None:
        async with registry.get(name="cancel", timeout=10):
            waiting = asyncio.ensure_future(registry.get(name="cancel", timeout=10).__aenter__())
            await asyncio.sleep(0.2)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await asyncio.sleep(0.3)  # the cancelled waiter's thread gets it, then gives it back

    assert in_threads(1, lambda _: asyncio.run(main())) == [None]
    with registry.get(name="cancel", timeout=2):
        pass


def test_a_holder_whose_session_died_frees_the_lock():
    """A worker that dies loses its database session: PostgreSQL releases its advisory
    locks; elsewhere its lease runs out (here: is made to have run out)."""
    lock = registry.get(name="orphan")
    lock.acquire()
    lock.connection.close()  # as if its process had died: nothing given back
    if connection.vendor != "postgresql":
        NamedLock.objects.update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    with registry.get(name="orphan", timeout=5):
        pass


@pytest.mark.skipif("connection.vendor == 'postgresql'")
def test_the_table_lock_renews_its_lease_while_held(settings):
    settings.ORCHESTRATOR_LEASE_SECONDS = 1
    lock = registry.get(name="renewed")
    assert isinstance(lock, TableLock)
    with lock:
        first = NamedLock.objects.get().expires_at
        time.sleep(1.2)
        assert NamedLock.objects.get().expires_at > first  # renewed, never expired
    assert not NamedLock.objects.exists()
