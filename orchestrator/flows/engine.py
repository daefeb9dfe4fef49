"""One worker's turn at a flow process: the flow function runs, each task call is a
`ProcessStep` row, and a re-run replays what an earlier turn completed (DESIGN §4.5).

The turn holds the process's lease (taken by `runner.run_process`). A task run is one
database transaction: the task body's own writes, its row and the lease renewal commit
together (`runner.write_step`, one statement on PostgreSQL), or not at all. So a task whose
row exists ran exactly once, and a re-run of the flow (after a dead worker or a failure)
returns that row's result instead of running the body again: calls are keyed by task name
and call order (`fetch#0`, `fetch#1`, `outer#0/inner#0` for a task called inside a task).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import datetime
import inspect
import logging
import threading
import time
import traceback as traceback_module
from typing import TYPE_CHECKING, Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from orchestrator import extensions, runlog
from orchestrator.aio import in_event_loop, run_sync, start_thread
from orchestrator.context import running
from orchestrator.exceptions import FormInvalid, ProcessFailureError
from orchestrator.flows.futures import (
    TaskFuture,
    TaskThreadPool,
    completed_future,
    resolve_futures,
)
from orchestrator.flows.options import delay_before_retry, fill_run_name, retry_delays
from orchestrator.flows.runners import CeleryTaskRunner, CeleryTaskRuns
from orchestrator.flows.states import (
    Completed,
    Failed,
    FlowRun,
    State,
    StateType,
    TaskRun,
    TaskRunContext,
    describe_error,
)
from orchestrator.injection import CoercionError, coerce, to_json
from orchestrator.models import EngineSettings, Process, ProcessStatus, ProcessStep, StepStatus
from orchestrator.runner import (
    LeaseLost,
    _assignments,
    is_api_unavailable,
    lease_expiry,
    write_step,
)
from orchestrator.timelimits import StepSession

if TYPE_CHECKING:
    from orchestrator.flows.flows import Flow
    from orchestrator.flows.tasks import Task
    from orchestrator.runner import ProcessRun

logger = logging.getLogger(__name__)

MAX_REASON = 10000
MAX_TRACEBACK = 50000

_turn: contextvars.ContextVar[FlowTurn | None] = contextvars.ContextVar("flow_turn", default=None)
_call: contextvars.ContextVar[TaskCall | None] = contextvars.ContextVar("task_call", default=None)


def current_turn() -> FlowTurn | None:
    """The flow run this code runs in (its body, a task, a future), or None."""
    return _turn.get()


def flow_turn() -> FlowTurn | None:
    """The flow run whose function itself (not a task of it) runs this code, or None."""
    turn = _turn.get()
    return turn if turn is not None and _call.get() is None else None


def get_run_context() -> RunContext:
    """The flow run (and task run) this code runs in, as Prefect's `get_run_context()`."""
    turn = _turn.get()
    if turn is None:
        raise RuntimeError("get_run_context() is only available inside a flow run")
    call = _call.get()
    return RunContext(
        flow=turn.flow,
        flow_run=turn.flow_run(),
        task=call.task if call is not None else None,
        task_run=call.task_run(call.attempt) if call is not None else None,
    )


@dataclasses.dataclass(frozen=True)
class RunContext:
    flow: Any
    flow_run: FlowRun
    task: Any = None
    task_run: TaskRun | None = None


# --- control flow: BaseExceptions, so a task's `except Exception` cannot swallow them ---------


class RunStop(BaseException):  # noqa: N818 - not an error: the turn stops here
    """The turn must stop without finishing the flow."""


class RunInterrupted(RunStop):
    """The lease is gone (aborted, or another worker took the run over): commit nothing more."""


class SessionLost(RunStop):
    """The database session died under a task run (terminated, a failover): its attempt
    rolled back with it and is no failure of the task; the run is given back."""

    def __init__(self, task_run_name: str) -> None:
        super().__init__(task_run_name)
        self.task_run_name = task_run_name


class Park(RunStop):
    """Give the run back and come back later (engine paused, or waiting for children)."""

    def __init__(self, reason: str, status: str = ProcessStatus.QUEUED) -> None:
        super().__init__(reason)
        self.reason, self.status = reason, status


class TaskRunTimeout(TimeoutError):
    """A task run took longer than its `timeout_seconds`."""


class FlowRunTimeout(TimeoutError):
    """A flow run took longer than its `timeout_seconds`."""


class SubmittedTasksFailed(Exception):
    """The flow ended while task runs it submitted (and never looked at) had failed."""


# --- task calls -------------------------------------------------------------------------------


class TaskCall:
    """One call of a task inside a flow run: its key, its run name, its arguments."""

    def __init__(self, turn: FlowTurn, task: Task, args: tuple, kwargs: dict[str, Any],
                 wait_for: Any = None, key: str | None = None) -> None:
        from orchestrator.flows.parameters import bind

        self.turn, self.task = turn, task
        self.parent = _call.get()
        self.key = key or turn.next_key(self.parent, task.name)
        self.args, self.kwargs = args, kwargs
        self.wait_for = list(wait_for or [])
        self.attempt = 1
        self.bound: inspect.BoundArguments = bind(task.signature, args, kwargs)
        self.parameters = dict(self.bound.arguments)
        index = self.key.rsplit("#", 1)[-1]
        self.run_name = fill_run_name(task.task_run_name, self.parameters, f"{task.name}-{index}")

    def resolve_inputs(self) -> None:
        """Wait for `wait_for` and for futures passed as arguments, then bind their results."""
        from orchestrator.flows.parameters import bind

        for future in self.wait_for:
            if isinstance(future, TaskFuture):
                future.final_state()
        args = tuple(resolve_futures(value) for value in self.args)
        kwargs = {name: resolve_futures(value) for name, value in self.kwargs.items()}
        if args != self.args or kwargs != self.kwargs:
            self.bound = bind(self.task.signature, args, kwargs)
            self.parameters = dict(self.bound.arguments)

    def task_run(self, attempt: int, cache_key: str | None = None) -> TaskRun:
        return TaskRun(
            name=self.run_name,
            task_key=self.key,
            flow_run_id=str(self.turn.process.pk),
            run_count=attempt,
            parameters=self.parameters,
            tags=tuple(self.task.tags),
            cache_key=cache_key,
        )

    def invoke(self) -> Any:
        """The task body (a coroutine for an async task), with this call as the current
        one: for nested task calls, and as the current run (`orchestrator.context`) whose
        step is this call, so the runs it starts are children keyed by the call."""
        token = _call.set(self)
        try:
            with self.log_scope(), self.turn.log_prints(self.task.log_prints), \
                    self.turn.running(self.key):
                return self.task.fn(*self.bound.args, **self.bound.kwargs)
        finally:
            _call.reset(token)

    def log_scope(self):
        """What the attempt logs is tagged with this task run (orchestrator.runlog)."""
        return runlog.log_scope(self.run_name, self.key, self.attempt)

    def flush_log(self) -> None:
        """Store the run's log lines after an attempt's transaction; a task called inside
        a task is still inside its caller's transaction: the caller's attempt stores them."""
        if self.parent is None:
            runlog.flush()


class CallRun:
    """The attempts of one task call: replay, cache, retries, hooks. Database work is in
    plain methods, so the async path can hand them to `sync_to_async`."""

    def __init__(self, call: TaskCall) -> None:
        self.call = call
        self.turn = call.turn
        task = call.task
        self.delays = retry_delays(task.retry_delay_seconds, task.retries)
        self.attempt = call.attempt = self.turn.failed_attempts.get(call.key, 0) + 1
        self.retries_done = 0
        self.cache_key: str | None = None
        self.cache_expires_at: datetime.datetime | None = None

    def begin(self) -> State | None:
        """A final state without running the body (replayed, cached), or None to run it."""
        turn, call = self.turn, self.call
        turn.check_can_start()
        if call.key in turn.completed:
            return turn.replay(call)
        call.resolve_inputs()
        turn.flush_replays()
        task = call.task
        if task.cache_key_fn is not None:
            context = TaskRunContext(task, call.task_run(self.attempt), call.parameters)
            key = task.cache_key_fn(context, call.parameters)
            if key:
                self.cache_key = normalise_cache_key(key)
                if task.cache_expiration is not None:
                    self.cache_expires_at = timezone.now() + task.cache_expiration
                if not task.refresh_cache:
                    hit = turn.cached(call, self.cache_key, self.attempt)
                    if hit is not None:
                        run_hooks(task.on_completion, task, call.task_run(self.attempt), hit)
                        return hit
        if task.on_running:
            run_hooks(task.on_running, task, call.task_run(self.attempt),
                      State(StateType.RUNNING))
        return None

    def record_success(self, result: Any, started: datetime.datetime) -> None:
        """Write the task run's row; call inside the transaction the body ran in."""
        stored = self.turn.storable(result, f"task {self.call.task.name!r}")
        self.turn.write(
            self.call.run_name, StepStatus.SUCCESS, {"result": stored}, started,
            key=self.call.key, attempt=self.attempt, cache_key=self.cache_key or "",
            cache_expires_at=self.cache_expires_at,
        )

    def record_success_atomic(self, result: Any, started: datetime.datetime) -> None:
        with transaction.atomic():
            self.record_success(result, started)
        self.call.flush_log()

    def record_failure(self, error: BaseException, started: datetime.datetime) -> float | None:
        """Write the failed attempt; the delay before the next attempt, or None: no retry."""
        task, call = self.call.task, self.call
        delay = None
        if self.retries_done < task.retries:
            retry = True
            if task.retry_condition_fn is not None:
                failed = Failed(error)
                try:
                    retry = bool(task.retry_condition_fn(task, call.task_run(self.attempt), failed))
                except Exception:  # noqa: BLE001 - a broken condition means: do not retry
                    logger.exception("retry_condition_fn of task %s failed", task.name)
                    retry = False
            if retry:
                delay = delay_before_retry(self.delays, self.retries_done, task.retry_jitter_factor)
        state: dict[str, Any] = {"error": self.turn.reason(error)}
        if delay is not None:
            state["retry_in"] = delay
        with transaction.atomic():
            self.turn.write(call.run_name, StepStatus.FAILED, state, started,
                            key=call.key, attempt=self.attempt)
        call.flush_log()  # the failed attempt's lines are kept, though its work rolled back
        if delay is not None:
            self.attempt += 1
            call.attempt = self.attempt
            self.retries_done += 1
            self.turn.counters_reset(call.key)
        return delay

    def completed(self, result: Any) -> State:
        state = Completed(result)
        if self.call.task.on_completion:
            run_hooks(self.call.task.on_completion, self.call.task,
                      self.call.task_run(self.attempt), state)
        return state

    def failed(self, error: BaseException) -> State:
        state = Failed(error)
        run_hooks(self.call.task.on_failure, self.call.task,
                  self.call.task_run(self.attempt), state)
        return state

    # --- sync ---------------------------------------------------------------------------------

    def run(self) -> State:
        state = self.begin()
        if state is not None:
            return state
        task = self.call.task
        while True:
            started = timezone.now()
            session = StepSession()
            try:
                if task.timeout_seconds:
                    result = self.attempt_with_timeout(started)
                else:
                    with transaction.atomic():
                        result = self.call.invoke()
                        touched = transaction_open()
                        if touched:
                            self.record_success(result, started)
                    if not touched:  # the body ran no SQL: the row is its whole transaction
                        self.record_success(result, started)
                self.call.flush_log()
            except RunStop:
                raise
            except Exception as error:  # noqa: BLE001 - the task's failure is its state
                if session.lost:
                    raise SessionLost(self.call.run_name) from error
                delay = self.record_failure(error, started)
                if delay is None:
                    return self.failed(error)
                self.turn.sleep(delay)
                continue
            return self.completed(result)

    def attempt_with_timeout(self, started: datetime.datetime) -> Any:
        """The attempt in a thread of its own, waited for at most `timeout_seconds`.

        Past the limit the attempt is abandoned: if its body ever returns, its transaction
        is rolled back instead of committed (a lock decides which side wins), so a timed-out
        attempt leaves no trace. The body itself is not interrupted (Python cannot stop a
        thread), only left behind.
        """
        decided = threading.Lock()
        outcome: dict[str, Any] = {"abandoned": False, "committed": False}

        def attempt() -> Any:
            try:
                atomic = transaction.atomic()
                atomic.__enter__()
                try:
                    result = self.call.invoke()
                    with decided:
                        if outcome["abandoned"]:
                            raise TaskRunTimeout("abandoned")
                        self.record_success(result, started)
                        atomic.__exit__(None, None, None)
                        outcome["committed"] = True
                    return result
                except BaseException as error:
                    if not outcome["committed"]:
                        atomic.__exit__(type(error), error, error.__traceback__)
                    raise
            finally:
                connection.close()

        future = start_thread(attempt, f"task-{self.call.key}")
        limit = self.call.task.timeout_seconds
        try:
            return future.result(timeout=limit)
        except TimeoutError:
            with decided:
                if not outcome["committed"]:
                    outcome["abandoned"] = True
            if outcome["committed"]:
                return future.result()
            raise TaskRunTimeout(
                f"Task run {self.call.run_name!r} exceeded its timeout of {limit:g} seconds"
            ) from None

    # --- async --------------------------------------------------------------------------------

    async def run_async(self) -> State:
        state = await sync_to_async(self.begin)()
        if state is not None:
            return state
        limit = self.call.task.timeout_seconds
        while True:
            started = timezone.now()
            begun = time.monotonic()
            try:
                token = _call.set(self.call)
                try:
                    with self.call.log_scope(), \
                            self.turn.log_prints(self.call.task.log_prints), \
                            self.turn.running(self.call.key):
                        coroutine = self.call.task.fn(*self.call.bound.args,
                                                      **self.call.bound.kwargs)
                        result = await (asyncio.wait_for(coroutine, limit) if limit else coroutine)
                finally:
                    _call.reset(token)
                await sync_to_async(self.record_success_atomic)(result, started)
            except RunStop:
                raise
            except Exception as error:  # noqa: BLE001 - the task's failure is its state
                if limit and isinstance(error, TimeoutError) and time.monotonic() - begun >= limit:
                    error = TaskRunTimeout(
                        f"Task run {self.call.run_name!r} exceeded its timeout of {limit:g} seconds"
                    )
                delay = await sync_to_async(self.record_failure)(error, started)
                if delay is None:
                    return await sync_to_async(self.failed)(error)
                await asyncio.sleep(delay)
                continue
            return await sync_to_async(self.completed)(result)


def transaction_open() -> bool:
    """Whether the current atomic block has begun a database transaction yet. On
    PostgreSQL the driver sends BEGIN with the first statement, so a task body that ran no
    SQL has none, and its row can be written on its own (one round trip, not three)."""
    if connection.vendor != "postgresql" or connection.connection is None:
        return True
    from psycopg.pq import TransactionStatus

    return connection.connection.info.transaction_status != TransactionStatus.IDLE


def log_task_run(process_id: Any, owner: str, row: dict[str, Any]) -> bool:
    """Append a task run's row if `owner` still holds the process's lease (else LeaseLost);
    returns whether the engine is paused. The per-task hot path.

    On PostgreSQL one statement: the INSERT and a read of the process row `FOR SHARE`, so an
    abort or a lease takeover (which update that row) waits for this commit or is seen by
    it; concurrent task runs of one flow share the lock instead of queueing on an UPDATE.
    """
    quote = connection.ops.quote_name
    columns, params = _assignments(ProcessStep, row)
    insert = (
        f"INSERT INTO {quote(ProcessStep._meta.db_table)} ({', '.join(columns)}) "  # noqa: S608
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    check = (
        f"SELECT (SELECT paused FROM {quote(EngineSettings._meta.db_table)} "  # noqa: S608
        f"WHERE id = 1) FROM {quote(Process._meta.db_table)} WHERE id = %s AND lease_owner = %s"
    )
    pk = Process._meta.pk.get_db_prep_value(process_id, connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"WITH step AS ({insert}) {check} FOR SHARE", [*params, pk, owner])
        else:  # SQLite: the INSERT took the database's write lock until the commit
            cursor.execute(insert, params)
            cursor.execute(check, [pk, owner])
        found = cursor.fetchone()
    if found is None:
        raise LeaseLost(str(process_id))
    return bool(found[0])


def normalise_cache_key(key: Any) -> str:
    import hashlib

    text = str(key)
    return text if len(text) <= 255 else hashlib.sha256(text.encode()).hexdigest()


def run_hooks(hooks: tuple, *args: Any) -> None:
    """Run state-change hooks in order; a failing hook is logged, never fails the run."""
    for hook in hooks:
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                run_sync(result)
        except Exception:  # noqa: BLE001 - hooks report, they do not decide
            logger.exception("hook %s failed", getattr(hook, "__name__", hook))


# --- the turn ---------------------------------------------------------------------------------


class FlowTurn:
    """One worker's turn at one flow process, holding its lease."""

    def __init__(self, run: ProcessRun, flow: Flow) -> None:
        self.run = run
        self.process = run.process
        self.pk = run.process.pk
        self.owner = run.owner
        self.flow = flow
        self.lock = threading.Lock()
        self.counters: dict[str, dict[str, int]] = {}
        self.completed: dict[str, Any] = {}
        self.failed_attempts: dict[str, int] = {}
        self.first_turn = True
        self.futures: list[TaskFuture] = []
        self.pool: TaskThreadPool | None = None
        self.celery: CeleryTaskRuns | None = None
        self.pending_replays: list[ProcessStep] = []
        self.paused = False
        self.deadline: float | None = None
        self.parameters: dict[str, Any] = {}
        self.progressed = False  # a row committed in this turn (delivery count reset)
        self.awaited: set[Any] = set()
        # When an earlier turn of this run last failed (None: never): a child that had
        # failed by then is retried along with this run (orchestrator.flows.children).
        self.failed_at: datetime.datetime | None = None

    # --- keys, replay, cache ------------------------------------------------------------------

    def next_key(self, parent: TaskCall | None, name: str) -> str:
        scope = parent.key if parent is not None else ""
        with self.lock:
            counts = self.counters.setdefault(scope, {})
            index = counts.get(name, 0)
            counts[name] = index + 1
        key = f"{scope}/{name}#{index}" if scope else f"{name}#{index}"
        return key if len(key) <= 255 else normalise_cache_key(key + "~")[:255]

    def child_key(self, name: str) -> str:
        """The key of a child run started now by the flow function (`name#n`)."""
        self.check_can_start()
        return self.next_key(None, name)

    def counters_reset(self, key: str) -> None:
        """A new attempt of `key` numbers the calls inside it from zero again."""
        with self.lock:
            self.counters.pop(key, None)

    def load_history(self) -> None:
        """What earlier turns recorded: completed task results and failed attempts."""
        rows = ProcessStep.objects.filter(process_id=self.pk, replayed=False).values_list(
            "task_key", "status", "attempt", "state", "name", "completed_at"
        )
        for key, status, attempt, state, name, completed_at in rows:
            if not key:
                if name == "Start":
                    self.first_turn = False
                elif status in (StepStatus.FAILED, StepStatus.WAITING):  # the flow failed
                    self.failed_at = max(self.failed_at or completed_at, completed_at)
                continue
            if status == StepStatus.SUCCESS:
                self.completed[key] = (state or {}).get("result")
            elif status == StepStatus.FAILED:
                self.failed_attempts[key] = max(self.failed_attempts.get(key, 0), attempt)

    def replay(self, call: TaskCall) -> State:
        """The recorded result of a call an earlier turn completed (no body, no hooks)."""
        now = timezone.now()
        with self.lock:
            self.pending_replays.append(
                ProcessStep(process_id=self.pk, name=call.run_name, status=StepStatus.SUCCESS,
                            state={}, started_at=now, completed_at=now, task_key=call.key,
                            replayed=True)
            )
        return Completed(self.decode(call, self.completed[call.key]), name="Replayed")

    def decode(self, call: TaskCall, value: Any) -> Any:
        """A task run's recorded (JSON) result as the task's return annotation says."""
        annotation = call.task.return_annotation
        if annotation is not inspect.Parameter.empty:
            try:
                value = coerce(value, annotation, call.key)
            except CoercionError:
                pass
        return value

    def flush_replays(self) -> None:
        """Write the replay marks gathered so far, in one statement."""
        with self.lock:
            rows, self.pending_replays = self.pending_replays, []
        if rows and not connection.in_atomic_block:
            ProcessStep.objects.bulk_create(rows)
        elif rows:
            with self.lock:
                self.pending_replays[:0] = rows

    def cached(self, call: TaskCall, cache_key: str, attempt: int) -> State | None:
        now = timezone.now()
        hit = (
            ProcessStep.objects.filter(cache_key=cache_key, status=StepStatus.SUCCESS)
            .filter(Q(cache_expires_at__isnull=True) | Q(cache_expires_at__gt=now))
            .order_by("-id")
            .values_list("state", "cache_expires_at")
            .first()
        )
        if hit is None:
            return None
        state, expires = hit
        with transaction.atomic():
            self.write(call.run_name, StepStatus.SUCCESS, state, now, key=call.key,
                       attempt=attempt, cache_key=cache_key, cache_expires_at=expires,
                       cache_hit=True)
        return Completed((state or {}).get("result"), name="Cached")

    # --- writing ------------------------------------------------------------------------------

    def write(self, name: str, status: str, state: dict[str, Any], started: datetime.datetime,
              *, key: str = "", attempt: int = 1, cache_key: str = "",
              cache_expires_at: datetime.datetime | None = None, cache_hit: bool = False,
              values: dict[str, Any] | None = None) -> None:
        """One step-log row, if this worker still holds the lease (else RunInterrupted).

        With `values` (or on a turn's first write) the process row is updated too
        (`runner.write_step`: the lease renewed, the delivery count reset). A plain task row
        only checks the lease (`log_task_run`): the heartbeat renews it, and the process row
        is not rewritten once per task.
        """
        now = timezone.now()
        row: dict[str, Any] = {
            "process": self.pk, "name": name[:255], "status": status, "state": state,
            "started_at": started, "completed_at": now, "task_key": key, "attempt": attempt,
        }
        if cache_key:
            row.update(cache_key=cache_key, cache_expires_at=cache_expires_at, cache_hit=cache_hit)
        try:
            if values is None and self.progressed:
                paused = log_task_run(self.pk, self.owner, row)
            else:
                lease = {"last_modified_at": now, "lease_expires_at": lease_expiry(),
                         "delivery_count": 0}
                paused = write_step(self.pk, self.owner, row, {**lease, **(values or {})})
                self.progressed = True
        except LeaseLost:
            raise RunInterrupted(str(self.pk)) from None
        if paused:
            self.paused = True

    def storable(self, value: Any, what: str) -> Any:
        try:
            stored = to_json(value)
        except (TypeError, ValueError) as error:
            raise TypeError(f"{what} returned a value that cannot be stored as JSON: {error}") \
                from None
        return self.run.redact(stored)

    def reason(self, error: BaseException) -> str:
        if isinstance(error, ProcessFailureError):
            text = f"{type(error).__name__}: {error.message}"
            if error.details is not None:
                text += f"\ndetails: {to_json(error.details)}"
        else:
            text = describe_error(error)
        return self.run.redact(text)[:MAX_REASON]

    # --- task calls ---------------------------------------------------------------------------

    def check_can_start(self) -> None:
        """Before a task run starts: the engine paused, the flow's time is up?"""
        if self.paused:
            raise Park("the engine is paused")
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise FlowRunTimeout(
                f"Flow run exceeded its timeout of {self.flow.timeout_seconds:g} seconds"
            )

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def call(self, task: Task, args: tuple, kwargs: dict[str, Any], return_state: bool,
             wait_for: Any = None) -> Any:
        """`task(...)` inside this flow run: sync tasks return, async ones are awaitable
        (or run to the end when called from sync code)."""
        call = TaskCall(self, task, args, kwargs, wait_for)
        if task.isasync:
            if in_event_loop():
                return self._unwrap_async(CallRun(call).run_async(), return_state)
            state = run_sync(CallRun(call).run_async())
        elif in_event_loop():
            # Sync work must not run on the event loop's thread (Django refuses the ORM
            # there): a pool thread runs it while the caller waits.
            state = self.thread_pool().submit(CallRun(call).run).result()
        else:
            state = CallRun(call).run()
        return state if return_state else state.result()

    async def _unwrap_async(self, coroutine: Any, return_state: bool) -> Any:
        state = await coroutine
        return state if return_state else state.result()

    def submit(self, task: Task, args: tuple, kwargs: dict[str, Any],
               wait_for: Any = None) -> TaskFuture:
        call = TaskCall(self, task, args, kwargs, wait_for)
        if call.key in self.completed:
            future = completed_future(call.run_name, call.key, self.replay(call))
        elif isinstance(self.flow.task_runner, CeleryTaskRunner):
            future = TaskFuture(call.run_name, call.key, self.celery_runs().submit(call))
        else:
            work = CallRun(call)
            job = (lambda: run_sync(work.run_async())) if task.isasync else work.run
            future = TaskFuture(call.run_name, call.key, self.thread_pool().submit(job))
        with self.lock:
            self.futures.append(future)
        return future

    def celery_runs(self) -> CeleryTaskRuns:
        with self.lock:
            if self.celery is None:
                self.celery = CeleryTaskRuns(self, self.flow.task_runner)
            return self.celery

    def thread_pool(self) -> TaskThreadPool:
        with self.lock:
            if self.pool is None:
                self.pool = TaskThreadPool(self.flow.max_workers)
            return self.pool

    def log_prints(self, enabled: bool | None):
        from orchestrator.flows.prints import printing_to_log

        return printing_to_log(self.flow.log_prints if enabled is None else enabled)

    def running(self, step_name: str = ""):
        """This flow run as the current run (`orchestrator.context`), in its task run
        `step_name` (a task call's key) or in the flow function itself."""
        return running(self.pk, self.process.workflow.name, step_name)

    # --- the flow -----------------------------------------------------------------------------

    def flow_run(self) -> FlowRun:
        return FlowRun(
            id=str(self.pk),
            name=self.process.run_name,
            flow_name=self.flow.name,
            parameters=self.parameters,
            parent_id=str(self.process.parent_id) if self.process.parent_id else None,
            run_count=self.process.retry_count + 1,
        )

    def execute(self) -> None:
        """Run (or re-run, replaying) the flow function to its end, or until it parks."""
        process = self.process
        if process.delivery_count > settings.ORCHESTRATOR_MAX_DELIVERIES:
            self.crash(
                f"gave up after {process.delivery_count - 1} interrupted attempts "
                "(did its worker crash?)"
            )
            return
        self.load_history()
        try:
            self.parameters = self.flow.parameters_from_state(process.state, self.run.secrets)
        except (FormInvalid, TypeError) as error:
            self.finish_failed(error, retry=False)
            return
        if self.first_turn:
            try:
                self.start()
            except RunInterrupted:
                self.interrupted()
                return
        if self.flow.timeout_seconds:
            elapsed = (timezone.now() - process.started_at).total_seconds()
            self.deadline = time.monotonic() + self.flow.timeout_seconds - max(elapsed, 0)
        token = _turn.set(self)
        session = StepSession()  # the flow function's own, between its task runs
        try:
            try:
                result = self.call_flow_function()
                self.settle_futures(raise_failures=True)
            except BaseException:
                self.settle_futures(raise_failures=False)
                raise
            finally:
                self.close()
        except Park as park:
            self.park(park)
        except RunInterrupted:
            self.interrupted()
        except SessionLost as lost:
            self.run.give_back(lost.task_run_name, lost.__cause__)
        except RunStop:
            raise
        except Exception as error:  # noqa: BLE001 - the flow's failure is its final state
            if session.lost:
                self.run.give_back(self.flow.name, error)
            else:
                self.finish_failed(error, retry=True)
        except BaseException as error:  # SystemExit, KeyboardInterrupt: the run crashed
            self.crash(describe_error(error))
            raise
        else:
            self.finish_completed(result)
        finally:
            _turn.reset(token)

    def start(self) -> None:
        """The first turn: name the run, log its start with its parameters, `on_running`."""
        run_name = fill_run_name(self.flow.flow_run_name, self.parameters, self.process.run_name)
        self.process.run_name = run_name
        shown = self.run.redact(dict(self.process.state))
        with transaction.atomic():
            self.write("Start", StepStatus.SUCCESS, shown, timezone.now(),
                       values={"run_name": run_name})
        self.first_turn = False
        run_hooks(self.flow.on_running, self.flow, self.flow_run(), State(StateType.RUNNING))

    def call_flow_function(self) -> Any:
        with runlog.log_scope(self.flow.name), self.log_prints(None), self.running():
            if self.flow.isasync:
                return run_sync(self.flow.fn(**self.parameters))
            return self.flow.fn(**self.parameters)

    def settle_futures(self, raise_failures: bool) -> None:
        """Wait for every submitted task run (the flow does not end before them); report
        the failures the flow never looked at. When the flow itself did not end well
        (`raise_failures` false), runs not started yet are cancelled; those in flight finish."""
        seen = 0
        failures: list[str] = []
        stop: BaseException | None = None
        while True:
            with self.lock:
                pending = self.futures[seen:]
                seen = len(self.futures)
            if not pending:
                break
            if not raise_failures:
                for future in pending:
                    future._future.cancel()
            for future in pending:
                if future._future.cancelled():
                    continue
                try:
                    state = future.final_state()
                except RunStop as error:
                    stop = stop or error
                    continue
                except Exception as error:  # noqa: BLE001 - reported with the others
                    state = Failed(error)
                if state.is_failed() and not future.observed:
                    failures.append(f"{future.task_run_name} ({state.message})")
        if stop is not None and raise_failures:
            raise stop
        if failures and raise_failures:
            raise SubmittedTasksFailed(
                f"{len(failures)} submitted task run(s) failed: " + "; ".join(failures[:10])
            )

    def close(self) -> None:
        if self.celery is not None:
            self.celery.close()
            self.celery = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        self.flush_replays()

    def finish_completed(self, result: Any) -> None:
        try:
            stored = self.storable(result, f"flow {self.flow.name!r}")
        except TypeError as error:
            self.finish_failed(error, retry=False)
            return
        state = {**self.process.state, "result": stored}
        if isinstance(stored, dict):
            state.update({k: v for k, v in stored.items() if k not in ("process_id",
                                                                        "workflow_name")})
        now = timezone.now()
        try:
            with transaction.atomic():
                self.write("Done", StepStatus.COMPLETE, state, now, values={
                    "state": state, "status": ProcessStatus.COMPLETED, "finished_at": now,
                    "lease_owner": "", "lease_expires_at": None, "failed_reason": "",
                    "traceback": "", "waiting_on_children": False,
                })
                extensions.process_stopped(self.process, ProcessStatus.COMPLETED)
        except RunInterrupted:
            self.interrupted()
            return
        self.process.state = state
        run_hooks(self.flow.on_completion, self.flow, self.flow_run(), Completed(result))

    def classify(self, error: BaseException) -> str:
        if isinstance(error, AssertionError):
            return ProcessStatus.INCONSISTENT_DATA
        if isinstance(error, TaskRunTimeout | FlowRunTimeout):
            return ProcessStatus.FAILED
        if is_api_unavailable(error):
            return ProcessStatus.API_UNAVAILABLE
        return ProcessStatus.FAILED

    def finish_failed(self, error: BaseException, retry: bool) -> None:
        """The flow raised: retry it later (flow `retries`) or fail it."""
        from orchestrator.services import enqueue_process

        status = self.classify(error)
        delay = None
        if retry and self.process.retry_count < self.flow.retries:
            delays = retry_delays(self.flow.retry_delay_seconds, self.flow.retries)
            delay = delay_before_retry(delays, self.process.retry_count, None)
            status = ProcessStatus.WAITING
        reason = self.reason(error)
        now = timezone.now()
        values: dict[str, Any] = {
            "status": status, "failed_reason": reason,
            "traceback": self.run.redact(
                "".join(traceback_module.format_exception(error)))[:MAX_TRACEBACK],
            "lease_owner": "", "lease_expires_at": None, "waiting_on_children": False,
        }
        if delay is not None:
            values.update(retry_at=now + datetime.timedelta(seconds=delay),
                          retry_count=self.process.retry_count + 1)
        step_status = StepStatus.WAITING if delay is not None else StepStatus.FAILED
        try:
            with transaction.atomic():
                self.write(self.flow.name, step_status, {**self.process.state, "error": reason},
                           now, values=values)
                if delay is not None:
                    enqueue_process(self.process, countdown=max(1, round(delay)))
                else:
                    extensions.process_stopped(self.process, status)
        except RunInterrupted:
            self.interrupted()
            return
        if delay is None:
            run_hooks(self.flow.on_failure, self.flow, self.flow_run(), Failed(error))

    def crash(self, reason: str) -> None:
        """The run cannot go on (its worker kept dying): failed, and `on_crashed` runs."""
        self.run.fail_without_step(reason)  # which wakes a parent waiting for this run
        error = RuntimeError(reason)
        run_hooks(self.flow.on_crashed, self.flow, self.flow_run(),
                  State(StateType.CRASHED, name="Crashed", message=reason, data=error))

    def park(self, park: Park) -> None:
        from orchestrator.flows.children import park_for_children

        if park.status != ProcessStatus.WAITING:
            self.run.park()
        elif not park_for_children(self, park.reason):
            FlowTurn(self.run, self.flow).execute()  # a child ended meanwhile: go on now


    def interrupted(self) -> None:
        """The lease is gone: if an operator aborted the run, its `on_cancellation` runs."""
        status = Process.objects.filter(pk=self.pk).values_list("status", flat=True).first()
        if status in (ProcessStatus.ABORTED, ProcessStatus.CANCELLED):
            run_hooks(self.flow.on_cancellation, self.flow, self.flow_run(),
                      State(StateType.CANCELLED, name="Cancelled", message=f"run {status}"))
        else:
            logger.warning("lost the lease of flow run %s; another worker goes on", self.pk)
