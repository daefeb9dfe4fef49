"""Futures of submitted task runs, and the thread pool they run in by default.

The pool is one flow run's: its threads each hold a database connection, which they close
when the pool shuts down at the end of the run (a plain ThreadPoolExecutor gives no thread
a chance to do that).
"""

from __future__ import annotations

import concurrent.futures
import contextvars
import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connections

from orchestrator.flows.states import State, StateType


class TaskThreadPool:
    """Up to `max_workers` threads, started as work arrives; each closes its own database
    connection on shutdown."""

    def __init__(self, max_workers: int) -> None:
        self.max_workers = max(1, max_workers)
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.threads: list[threading.Thread] = []
        self.idle = 0
        self.lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> concurrent.futures.Future:
        """Run `fn(*args)` in a pool thread, in a copy of the caller's context variables."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        context = contextvars.copy_context()
        self.jobs.put((future, context, fn, args))
        with self.lock:
            if self.idle == 0 and len(self.threads) < self.max_workers:
                thread = threading.Thread(
                    target=self._work, name=f"flow-task-{len(self.threads)}", daemon=True
                )
                self.threads.append(thread)
                thread.start()
            else:
                self.idle -= 1  # this job wakes one idle thread
        return future

    def _work(self) -> None:
        try:
            while True:
                item = self.jobs.get()
                if item is None:
                    return
                future, context, fn, args = item
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(context.run(fn, *args))
                    except BaseException as error:  # noqa: BLE001 - handed to the waiter
                        future.set_exception(error)
                with self.lock:
                    self.idle += 1
        finally:
            connections.close_all()

    def shutdown(self) -> None:
        for _ in self.threads:
            self.jobs.put(None)
        for thread in self.threads:
            thread.join()
        self.threads.clear()


class TaskFuture:
    """A submitted task run (Prefect's PrefectFuture): `result()`, `wait()`, `state`."""

    def __init__(self, task_run_name: str, task_key: str,
                 future: concurrent.futures.Future) -> None:
        self.task_run_name = task_run_name
        self.task_run_id = task_key
        self._future = future
        self.observed = False  # the flow looked at the outcome: its failure is handled

    def __repr__(self) -> str:
        return f"TaskFuture({self.task_run_name!r}, {self.state!r})"

    def wait(self, timeout: float | None = None) -> None:
        concurrent.futures.wait([self._future], timeout=timeout)

    def done(self) -> bool:
        return self._future.done()

    def final_state(self, timeout: float | None = None) -> State:
        """The run's final state; control exceptions of the engine propagate."""
        return self._future.result(timeout=timeout)

    @property
    def state(self) -> State:
        if not self._future.done():
            return State(StateType.RUNNING if self._future.running() else StateType.PENDING)
        self.observed = True
        return self.final_state()

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> Any:
        state = self.final_state(timeout)
        self.observed = True
        return state.result(raise_on_failure=raise_on_failure)

    def add_done_callback(self, fn: Callable[[TaskFuture], Any]) -> None:
        self._future.add_done_callback(lambda _: fn(self))


def completed_future(task_run_name: str, task_key: str, state: State) -> TaskFuture:
    future: concurrent.futures.Future = concurrent.futures.Future()
    future.set_result(state)
    return TaskFuture(task_run_name, task_key, future)


class TaskFutureList(list):
    """What `task.map()` returns: a list of futures that can be waited for together."""

    def wait(self, timeout: float | None = None) -> None:
        concurrent.futures.wait([future._future for future in self], timeout=timeout)

    def result(self, timeout: float | None = None, raise_on_failure: bool = True) -> list[Any]:
        return [future.result(timeout, raise_on_failure) for future in self]


def resolve_futures(value: Any) -> Any:
    """Futures passed as task arguments become their results (one level into containers)."""
    if isinstance(value, TaskFuture):
        return value.result()
    if isinstance(value, list | tuple) and any(isinstance(item, TaskFuture) for item in value):
        return type(value)(resolve_futures(item) for item in value)
    if isinstance(value, dict) and any(isinstance(item, TaskFuture) for item in value.values()):
        return {key: resolve_futures(item) for key, item in value.items()}
    return value


def wait_all(futures: Iterable[TaskFuture]) -> None:
    concurrent.futures.wait([future._future for future in futures])
