"""Step time limits (DESIGN §4.1): a hung step cannot hold a worker forever.

A Python thread cannot be killed, and an exception injected into running code (a signal
handler, an asynchronous exception) may land anywhere, in the middle of a commit too. So
the runner never makes a worker wait on a step it cannot stop: on a Celery worker each run
executes on a `StepExecutor`, a helper thread owned by the worker's pool slot, while the
slot's own thread watches the clock (and renews the run's lease). When a step passes its
limit, the watcher records the failure, ends the step's database session (`StepSession`:
its transaction rolls back, its row locks are released) and abandons the executor. The
slot's thread goes back to Celery at once, and its next run gets a fresh executor. The
abandoned thread ends when its code returns, if ever; nothing it does afterwards can
commit (its session is gone and its lease taken). This works alike in the prefork, solo
and threads pools.
"""

from __future__ import annotations

import contextlib
import queue
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import close_old_connections, connection, connections


def time_limit_of(step: Any) -> float:
    """The step's own limit, else the default from settings (seconds)."""
    return step.time_limit or settings.ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS


def exceeded(step_name: str, limit: float) -> str:
    """The failure reason of a step past its limit."""
    return f"Step {step_name!r} exceeded its time limit of {limit:g} s"


def stack_of(thread_id: int) -> str:
    """Where a thread is now, as a traceback-like text (empty when it has ended)."""
    frame = sys._current_frames().get(thread_id)
    if frame is None:
        return ""
    return "Stack of the step when its time limit passed:\n" + "".join(
        traceback.format_stack(frame)
    )


class StepSession:
    """The database session of the thread running a step, as another thread can end it."""

    def __init__(self) -> None:
        connection.ensure_connection()
        self.vendor = connection.vendor
        self.raw = connection.connection
        info = getattr(self.raw, "info", None)  # psycopg 3
        self.backend_pid = getattr(info, "backend_pid", None)

    @property
    def blocks_writers(self) -> bool:
        """SQLite: the step's transaction holds the database's one write lock from its start,
        so it must end before anyone (the watcher included) can write."""
        return self.vendor == "sqlite"

    @property
    def lost(self) -> bool:
        """The session died (terminated, a failover, the network): Django dropped it, and
        the thread now has another connection or none."""
        return connection.connection is not self.raw or bool(getattr(self.raw, "closed", False))

    def end(self) -> None:
        """End the session from the calling thread: the step's transaction rolls back."""
        if self.vendor == "postgresql" and self.backend_pid:
            with connection.cursor() as cursor:  # the calling thread's own connection
                cursor.execute("SELECT pg_terminate_backend(%s)", [self.backend_pid])
        elif self.vendor == "sqlite":
            self.raw.interrupt()
            self.raw.close()


def _skip_health_checks() -> None:
    """This thread's open connections go on without the health check that the last
    `close_old_connections` (after the job before) armed for their next use."""
    for alias_connection in connections.all(initialized_only=True):
        if alias_connection.connection is not None:
            alias_connection.health_check_done = True


class Job:
    """One call handed to an executor, and its result or error."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...],
                 continues_task: bool = False) -> None:
        self.func, self.args = func, args
        self.continues_task = continues_task
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.result


class StepExecutor:
    """A helper thread that belongs to one worker thread and runs its jobs, one at a time.

    Its database connections are handled as Celery handles a worker's around each task:
    closed before and after a job when unusable or past their age, and health-checked
    (a round trip) before their first use in a task. A job that continues the task of the
    job before it (a run handed off to the same worker, see runner.hand_off) follows it at
    once on the same connections, which that job just used and left usable: they are not
    checked again, as Django checks a connection once per request or task, not per query.
    """

    _local = threading.local()

    @classmethod
    def for_this_thread(cls) -> StepExecutor:
        executor = getattr(cls._local, "executor", None)
        if executor is None or executor.abandoned:
            executor = cls._local.executor = cls()
        return executor

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[Job] = queue.SimpleQueue()
        self.abandoned = False
        self.thread = threading.Thread(target=self._serve, name="step-executor", daemon=True)
        self.thread.start()

    def submit(self, func: Callable[..., Any], *args: Any, continues_task: bool = False) -> Job:
        job = Job(func, args, continues_task)
        self.jobs.put(job)
        return job

    def abandon(self) -> None:
        """Leave the thread to its hung job; it ends when the job returns, if ever."""
        self.abandoned = True

    def _serve(self) -> None:
        while not self.abandoned:
            job = self.jobs.get()
            try:
                if job.continues_task:
                    _skip_health_checks()
                else:
                    close_old_connections()
                job.result = job.func(*job.args)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                job.error = error
            finally:
                with contextlib.suppress(Exception):  # a dead session cannot close cleanly
                    close_old_connections()
                job.done.set()
        with contextlib.suppress(Exception):
            connection.close()
