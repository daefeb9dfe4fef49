"""The runner: executes a process's steps, one database transaction per step (DESIGN §4.3).

A worker first claims the process with a lease (a conditional UPDATE), so a duplicate
delivery finds it taken and does nothing. Each step then runs in one transaction with
its log row and the process's new state; the closing UPDATE is conditional on still
holding the lease, so a worker that lost its lease can never commit. Consecutive steps
run in the same Celery task; the loop stops at anything that waits (input, callback,
retry), at the end, or when an admin pauses the engine. A second thread watches the run
(`watch`): it renews the lease during long steps and fails a step past its time limit
(orchestrator.timelimits says how the worker gets free of it).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import inspect
import logging
import os
import secrets as token_generator
import socket
import threading
import time
import traceback as traceback_module
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.models import F, Model, Q
from django.utils import timezone

from orchestrator import concurrency, extensions, registry, runlog, selectors
from orchestrator.aio import run_sync
from orchestrator.context import running
from orchestrator.crypto import decrypt_json, token_digest
from orchestrator.exceptions import ProcessFailureError
from orchestrator.injection import call_with_state, to_json
from orchestrator.models import (
    RUNNABLE_STATUSES,
    EngineSettings,
    Process,
    ProcessStatus,
    ProcessStep,
    StepStatus,
    Workflow,
)
from orchestrator.redaction import Redactor, redacting
from orchestrator.rows import fields_of, model_from_row
from orchestrator.timelimits import (
    StepExecutor,
    StepSession,
    exceeded,
    stack_of,
    time_limit_of,
)
from orchestrator.workflow import Step, StepKind, StepList

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker took the process over; this one must not commit."""


class StepsGone(Exception):
    """The deployed workflow no longer has the process's remaining steps."""


def new_lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{token_generator.token_hex(4)}"


def renewal_interval() -> float:
    """How often a run's lease is renewed: every third of it."""
    return max(settings.ORCHESTRATOR_LEASE_SECONDS / 3, 0.5)


def lease_expiry() -> datetime.datetime:
    return timezone.now() + datetime.timedelta(seconds=settings.ORCHESTRATOR_LEASE_SECONDS)


def workflow_steps(process: Process) -> StepList:
    definition = registry.get_definition(process.workflow.name)
    if definition is None:
        raise StepsGone(f"workflow {process.workflow.name!r} is no longer in the code registry")
    return definition.load().steps


def align_position(process: Process, steps: StepList) -> int:
    """Where the process stands in the current code's step list, found by step name.

    A deployment may have changed the workflow since the process started; it goes on
    by name, never by a silent positional shift, and refuses when steps are gone.
    """
    names = steps.names
    if names == process.planned_steps:
        return process.position
    remaining = process.planned_steps[process.position :]
    missing = [name for name in remaining if name not in names]
    if missing:
        raise StepsGone("the workflow no longer has the step(s): " + ", ".join(missing))
    if not remaining:
        return len(names)
    name = remaining[0]
    occurrence = process.planned_steps[: process.position].count(name)
    indexes = [index for index, candidate in enumerate(names) if candidate == name]
    return indexes[min(occurrence, len(indexes) - 1)]


def claim(process_id: str, owner: str) -> Process | None:
    """Take the lease if nobody holds a live one and the engine is not paused; the run as
    the claim left it, with its workflow, or None. A run of a workflow with a concurrency
    limit also needs a free slot (orchestrator.concurrency)."""
    now = timezone.now()
    values = {
        "lease_owner": owner,
        "lease_expires_at": lease_expiry(),
        "status": ProcessStatus.RUNNING,
        "delivery_count": F("delivery_count") + 1,
        "retry_at": None,
        "slot_requested_at": None,
        "last_modified_at": now,
    }
    if connection.vendor == "postgresql":
        process = claim_in_one_statement(process_id, values, now)
        if process is not None:
            return process
    if selectors.engine_is_paused():
        return None
    due_retry = Q(status=ProcessStatus.WAITING, retry_at__lte=now)
    claimed_unlimited = connection.vendor != "postgresql" and (
        Process.objects.filter(pk=process_id)
        .filter(Q(status__in=RUNNABLE_STATUSES) | due_retry)
        .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
        .filter(concurrency.unlimited_workflow())
        .update(**values)
    )
    if not claimed_unlimited and not concurrency.claim_slot(process_id, values):
        return None
    return Process.objects.select_related("workflow").get(pk=process_id)


def claim_in_one_statement(
    process_id: str, values: dict[str, Any], now: datetime.datetime
) -> Process | None:
    """PostgreSQL: the claim of a run whose workflow has no concurrency limit, while the
    engine is not paused, and the read of the run and its workflow, in one round trip:
    an UPDATE joined to the workflow (whose row it does not lock) RETURNING both rows.
    None when it claimed nothing (taken, not runnable, limited, paused).

    Made outside any transaction (as a worker makes it), the claim is its own transaction
    and commits without waiting for its WAL flush (synchronous_commit off for it alone):
    other sessions see it at once all the same, and the first step's commit, which waits
    for its own flush, flushes the claim before it. Only a crash of the database server
    in between can lose it, and then no step of this turn has committed either: the run
    stands where it stood, unclaimed, and is delivered or swept again. A step's commit,
    and anything else, still waits for its flush."""
    db = connections[DEFAULT_DB_ALIAS]
    settable = tuple(name for name in values if name != "delivery_count")
    unflushed = not db.in_atomic_block  # inside one, it would be the caller's commit
    set_params = [field.get_db_prep_save(values[field.name], db)
                  for field in fields_of(Process, settable)]
    at = Process._meta.get_field("retry_at").get_db_prep_save(now, db)
    pk = Process._meta.pk.get_db_prep_value(process_id, db)
    params = [*set_params, pk, *RUNNABLE_STATUSES, ProcessStatus.WAITING, at, at]
    with db.cursor() as cursor:
        cursor.execute(claim_statement(settable, unflushed), params)
        row = cursor.fetchone()
    if row is None:
        return None
    width = len(Process._meta.concrete_fields)
    process = model_from_row(Process, row[:width])
    process.workflow = model_from_row(Workflow, row[width:])
    return process


@functools.cache
def claim_statement(set_names: tuple[str, ...], unflushed: bool) -> str:
    """claim_in_one_statement's SQL (PostgreSQL), made once per set of columns: its
    parameters are the new values of `set_names` (in the model's order), the process's
    id, the runnable statuses, the waiting status and the time twice."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    prefix, joined = (
        ("WITH unflushed AS (SELECT set_config('synchronous_commit', 'off', true)) ",
         ", unflushed") if unflushed else ("", "")
    )
    set_columns = [quote(field.column) for field in fields_of(Process, set_names)]
    returning = [f"p.{quote(f.column)}" for f in Process._meta.concrete_fields] + [
        f"w.{quote(f.column)}" for f in Workflow._meta.concrete_fields
    ]
    runnable = ", ".join(["%s"] * len(RUNNABLE_STATUSES))
    # Only model metadata (quoted names) is formatted in; every value is a parameter.
    return (
        f"{prefix}UPDATE {quote(Process._meta.db_table)} AS p "  # noqa: S608
        f"SET {', '.join(f'{column} = %s' for column in set_columns)}, "
        f"delivery_count = p.delivery_count + 1 "
        f"FROM {quote(Workflow._meta.db_table)} AS w{joined} "
        f"WHERE p.id = %s AND w.id = p.workflow_id AND w.concurrency_limit IS NULL "
        f"AND (p.status IN ({runnable}) OR (p.status = %s AND p.retry_at <= %s)) "
        f"AND (p.lease_owner = '' OR p.lease_expires_at < %s) "
        f"AND NOT EXISTS (SELECT 1 FROM {quote(EngineSettings._meta.db_table)} "
        f"WHERE id = 1 AND paused) "
        f"RETURNING {', '.join(returning)}"
    )


@dataclass(frozen=True)
class WatchedStep:
    """The step a run is executing, as the thread watching the run sees it."""

    name: str
    position: int  # the process's position as stored when the step began
    limit: float
    deadline: float  # on time.monotonic()'s clock
    started_at: datetime.datetime
    thread_id: int
    session: StepSession


# What failing an overdue step found (ProcessRun.store_failure).
RECORDED, MOVED_ON, LEASE_LOST = "recorded", "moved on", "lease lost"


class RunWatch:
    """What the thread executing a run shares with the thread watching it."""

    def __init__(self, queue: str | None = None) -> None:
        self.queue = queue  # a worker's run: the queue its task came from (see hand_off)
        self.handed_off: str | None = None  # the process it runs next (hand_off)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.run: ProcessRun | None = None  # once the run holds its lease
        self.step: WatchedStep | None = None
        self.expired = False
        self.closed = False
        self.wake_at = 0.0  # when the waiting watcher wakes by itself (time.monotonic())

    def step_started(self, step: WatchedStep) -> None:
        """The watcher is woken only when the step's deadline comes before its own wake-up:
        otherwise it finds the step then (not a thread switch per step)."""
        with self.changed:
            self.step = step
            if step.deadline < self.wake_at:
                self.changed.notify_all()

    def step_ended(self) -> bool:
        """The step's code returned; True when it had been failed for its time limit."""
        with self.lock:
            self.step = None
            return self.expired

    def close(self) -> None:
        """The run is over in the executing thread: the watcher stops."""
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def kept_runs(self) -> list[tuple[str, str]]:
        """The run handed off to this worker (hand_off), as `send_runs` takes it."""
        return [(self.handed_off, self.queue)] if self.handed_off and self.queue else []

    def renew_lease(self) -> None:
        run = self.run
        if run is None:
            return
        try:
            Process.objects.filter(pk=run.process.pk, lease_owner=run.owner).update(
                lease_expires_at=lease_expiry()
            )
        except Exception:  # noqa: BLE001 - a missed renewal only shortens the lease
            logger.warning("could not renew the lease of %s", run.process.pk)
            # Its session may have died (terminated, a failover): the next renewal opens
            # a new one (Django would go on failing on the dead one until the task ends).
            with contextlib.suppress(Exception):
                connection.close()

    def expire(self, watched: WatchedStep) -> bool:
        """The step passed its time limit: fail the run and end the step's database session.
        True when the step is given up (the run is over for this worker); False when it
        ended just in time."""
        with self.lock:
            if self.step is not watched or self.run is None:
                return False
            if watched.session.blocks_writers:
                watched.session.end()
            found = self.run.fail_overdue(watched)
            if found == MOVED_ON and not watched.session.blocks_writers:
                return False
            if not watched.session.blocks_writers:
                watched.session.end()
            self.expired = True
            return True


def watch(run_watch: RunWatch) -> bool:
    """Until the run is closed: renew its lease every third of it and fail a step that
    passes its time limit. True when a step was given up (see orchestrator.timelimits)."""
    interval = renewal_interval()
    renew_at = time.monotonic() + interval
    judged: WatchedStep | None = None
    while True:
        with run_watch.changed:
            while True:
                if run_watch.closed:
                    return False
                watched = run_watch.step
                if watched is judged:
                    watched = None
                wake = renew_at if watched is None else min(renew_at, watched.deadline)
                if time.monotonic() >= wake:
                    break
                run_watch.wake_at = wake
                run_watch.changed.wait(wake - time.monotonic())
        now = time.monotonic()
        if watched is not None and now >= watched.deadline:
            try:
                if run_watch.expire(watched):
                    return True
                judged = watched
            except Exception:  # noqa: BLE001 - e.g. the database is down: try again soon
                logger.exception("could not fail the overdue step %r", watched.name)
                renew_at = min(renew_at, now + 1)
        if now >= renew_at:
            run_watch.renew_lease()
            renew_at = now + interval


@dataclass
class Outcome:
    """What one step did to the process; `stop` ends the run loop."""

    step_status: str
    process_status: str
    state: dict[str, Any]
    position: int
    stop: bool = False
    extra: dict[str, Any] | None = None
    engine_paused: bool = False


def classify_failure(error: BaseException, step: Step, process: Process) -> str:
    """A retrystep with attempts left waits for its retry, whatever it raised; otherwise
    (plain steps, and retrysteps out of attempts) the error's kind decides."""
    retries_left = process.retry_count < settings.ORCHESTRATOR_RETRY_MAX_ATTEMPTS
    if step.kind == StepKind.RETRY and retries_left:
        return ProcessStatus.WAITING
    if isinstance(error, AssertionError):
        return ProcessStatus.INCONSISTENT_DATA
    if is_api_unavailable(error):
        return ProcessStatus.API_UNAVAILABLE
    return ProcessStatus.FAILED


def is_api_unavailable(error: BaseException) -> bool:
    """Connection errors and HTTP 502/503/504 from an external API."""
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    response = getattr(error, "response", None)
    status_code = getattr(response, "status_code", None) or getattr(error, "status_code", None)
    if status_code in (502, 503, 504):
        return True
    return type(error).__name__ in ("ConnectError", "ConnectTimeout", "ConnectionError")


def retry_delay(retry_count: int) -> int:
    delay = settings.ORCHESTRATOR_RETRY_BASE_SECONDS * (2**retry_count)
    return min(delay, settings.ORCHESTRATOR_RETRY_MAX_SECONDS)


def _assignments(model: type[Model], values: dict[str, Any]) -> tuple[list[str], list[Any]]:
    """Quoted column names and database-ready parameters for `values` of `model`."""
    db = connections[DEFAULT_DB_ALIAS]
    fields = fields_of(model, tuple(values))
    columns = [db.ops.quote_name(field.column) for field in fields]
    params = [field.get_db_prep_save(values[field.name], db) for field in fields]
    return columns, params


@functools.cache
def step_statements(
    vendor: str, set_names: tuple[str, ...], log_names: tuple[str, ...], shared_state: bool
) -> tuple[str, ...]:
    """write_step's SQL for these columns: on PostgreSQL one statement (parameters: the
    process's new values, its id, the lease owner, the log row's values; with
    `shared_state` the log row's state is the process's new state, as the UPDATE returns
    it); elsewhere the INSERT (the log row's values) and the UPDATE (the rest). Made once
    per set of columns (keyed by field names: a name hashes faster than a Field)."""
    quote = connections[DEFAULT_DB_ALIAS].ops.quote_name
    set_fields, log_fields = fields_of(Process, set_names), fields_of(ProcessStep, log_names)
    paused = f"(SELECT paused FROM {quote(EngineSettings._meta.db_table)} WHERE id = 1)"  # noqa: S608
    # Only model metadata (quoted names) is formatted in; every value is a parameter.
    update = (
        f"UPDATE {quote(Process._meta.db_table)} "  # noqa: S608
        f"SET {', '.join(f'{quote(field.column)} = %s' for field in set_fields)} "
        f"WHERE id = %s AND lease_owner = %s"
    )
    columns = [quote(field.column) for field in log_fields]
    values_sql = ["%s"] * len(log_fields)
    state = quote(Process._meta.get_field("state").column)
    if shared_state:
        columns.append(quote(ProcessStep._meta.get_field("state").column))
        values_sql.append(f"moved.{state}")
    into = f"INSERT INTO {quote(ProcessStep._meta.db_table)} ({', '.join(columns)})"
    if vendor == "postgresql":
        returning = f"id, {state}" if shared_state else "id"
        return (
            f"WITH moved AS ({update} RETURNING {returning}), "  # noqa: S608
            f"step AS ({into} SELECT {', '.join(values_sql)} FROM moved) "
            f"SELECT {paused} FROM moved",
        )
    return f"{into} VALUES ({', '.join(values_sql)})", f"{update} RETURNING {paused}"


def write_step(process_id: Any, owner: str, log_row: dict[str, Any],
               values: dict[str, Any], last_write: bool = False) -> bool:
    """Append the step's log row and write the process's new state, if `owner` still holds
    the lease (else LeaseLost); returns whether the engine is paused, as of this commit.

    This is the per-step hot path: on PostgreSQL the conditional UPDATE, the INSERT (made
    only when the UPDATE found the lease) and the read of the engine switch travel as one
    statement (a data-modifying CTE); when the log row's state is the process's new state
    (the same object, as a step's commit has it), the state is encoded and sent once and
    the INSERT takes it from the UPDATE. With `last_write` (nothing else writes in the
    step's transaction after it) that statement may be the whole transaction
    (`alone_in_transaction`): one round trip per step. Elsewhere (SQLite, where a statement
    is a function call) they are two statements. Its SQL is made once per set of columns
    (`step_statements`), and it uses the thread's connection itself, not the `connection`
    proxy (a thread-local lookup at every attribute read, dozens per step).
    """
    db = connections[DEFAULT_DB_ALIAS]
    postgresql = db.vendor == "postgresql"
    shared = postgresql and "state" in values and log_row.get("state") is values["state"]
    set_names = tuple(values)
    log_names = tuple(name for name in log_row if not (shared and name == "state"))
    set_params = [field.get_db_prep_save(values[field.name], db)
                  for field in fields_of(Process, set_names)]
    log_params = [field.get_db_prep_save(log_row[field.name], db)
                  for field in fields_of(ProcessStep, log_names)]
    pk = Process._meta.pk.get_db_prep_value(process_id, db)
    statements = step_statements(db.vendor, set_names, log_names, shared)
    with db.cursor() as cursor:
        if postgresql:
            with alone_in_transaction(db, last_write):
                cursor.execute(statements[0], [*set_params, pk, owner, *log_params])
        else:
            cursor.execute(statements[0], log_params)
            cursor.execute(statements[1], [*set_params, pk, owner])
        row = cursor.fetchone()
    if row is None:
        raise LeaseLost(str(process_id))
    return bool(row[0])


@contextlib.contextmanager
def alone_in_transaction(db: Any, last_write: bool) -> Iterator[None]:
    """On PostgreSQL, when the step's transaction (the outermost atomic block) has sent
    nothing yet (its code ran no SQL) and the statement inside this block is its last
    write, that statement is the whole transaction: PostgreSQL runs a lone statement as a
    transaction of its own, committed in the same round trip (instead of BEGIN, the
    statement and COMMIT in three). It writes nothing unless it holds the lease, so it
    commits only what a step's commit would. The atomic block's COMMIT then finds
    nothing left to commit."""
    raw = db.connection
    info = getattr(raw, "info", None)  # psycopg 3
    if last_write and info is not None and len(db.atomic_blocks) == 1:
        from psycopg.pq import TransactionStatus

        alone = info.transaction_status == TransactionStatus.IDLE
    else:
        alone = False
    if not alone:
        yield
        return
    raw.autocommit = True
    try:
        yield
    finally:
        raw.autocommit = False


def make_room_for_other_writers(step_seconds: float) -> None:
    """SQLite has one writer at a time and a step holds the write lock for its whole
    transaction; a waiting writer (the web, an admin pausing the engine) polls for the
    lock every 100 ms at most. Without a gap between two long steps it could starve."""
    time.sleep(min(step_seconds, 0.1))


class ProcessRun:
    """One worker's turn at one process, holding its lease."""

    def __init__(self, process: Process, owner: str, run_watch: RunWatch) -> None:
        self.process = process
        self.owner = owner
        self.watch = run_watch
        self.stored_position = process.position  # as the database has it
        self.secrets = decrypt_json(process.secrets)
        self.redact = Redactor(self.secrets)
        self.replanned = False
        self.renew_lease_at = time.monotonic() + renewal_interval()  # claimed just now

    def run(self) -> None:
        definition = registry.get_definition(self.process.workflow.name)
        execute_turn = getattr(definition.load(), "execute_turn", None) if definition else None
        if execute_turn is not None:  # the workflow runs its own turn (a flow)
            execute_turn(self)
            return
        try:
            steps = workflow_steps(self.process)
            position = align_position(self.process, steps)
        except StepsGone as error:
            self.fail_without_step(str(error))
            return
        if steps.names != self.process.planned_steps:
            self.process.planned_steps = steps.names
            self.replanned = True
        self.process.position = position
        paused = False  # execute_run asked just before it claimed the run
        while True:
            if paused:
                self.park()
                return
            if self.process.delivery_count > settings.ORCHESTRATOR_MAX_DELIVERIES:
                self.fail_without_step(
                    f"gave up after {self.process.delivery_count - 1} interrupted attempts "
                    f"at step {self.process.next_step_name!r} (did its worker crash?)"
                )
                return
            if self.process.position >= len(steps):
                step = Step(name="Done", kind=StepKind.DONE)
            else:
                step = steps[self.process.position]
            started = time.monotonic()
            outcome = self.run_step(step)
            if outcome is None or outcome.stop:
                return
            paused = outcome.engine_paused
            if connection.vendor == "sqlite":
                make_room_for_other_writers(time.monotonic() - started)

    def run_step(self, step: Step) -> Outcome | None:
        """Run one step in its own transaction, watched for its time limit; None when it
        failed or the lease was lost."""
        started = timezone.now()
        limit = time_limit_of(step)
        session = StepSession()
        self.watch.step_started(WatchedStep(
            step.name, self.stored_position, limit, time.monotonic() + limit, started,
            threading.get_ident(), session,
        ))
        outcome = error = None
        with runlog.log_scope(step.name, attempt=self.process.retry_count + 1):
            try:
                with transaction.atomic():
                    outcome = self.execute(step)
                    if outcome.stop:
                        offering.watch = self.watch  # its commit may hand a run off
                    self.commit(step, outcome, started)
                    extensions.process_stopped(self.process, outcome.process_status)
            except LeaseLost:
                outcome = None
            except Exception as failure:  # noqa: BLE001 - every step failure is recorded
                outcome, error = None, failure
            finally:
                offering.watch = None
            if self.watch.step_ended():
                return None  # failed for its time limit meanwhile, by the watching thread
            if error is not None and session.lost:
                self.give_back(step.name, error)
            elif error is not None:
                self.record_failure(step, error, started)
            elif outcome is None:
                logger.warning("lost the lease of %s; another worker goes on", self.process.pk)
        runlog.flush()  # after the step's transaction, so a rolled-back attempt's lines stay
        return outcome

    def state_for_step(self) -> dict[str, Any]:
        return {**self.process.state, **self.secrets}

    def execute(self, step: Step) -> Outcome:
        process = self.process
        following = process.position + 1
        if step.predicate is not None and not step.predicate(self.state_for_step()):
            return Outcome(StepStatus.SKIPPED, ProcessStatus.RUNNING, process.state, following)
        if step.kind == StepKind.DONE:
            return Outcome(
                StepStatus.COMPLETE, ProcessStatus.COMPLETED, process.state, following, stop=True
            )
        if step.kind == StepKind.ABORT:
            return Outcome(
                StepStatus.ABORT, ProcessStatus.ABORTED, process.state, process.position, stop=True
            )
        if step.kind == StepKind.INPUT:
            return Outcome(
                StepStatus.SUSPEND,
                ProcessStatus.SUSPENDED,
                process.state,
                process.position,
                stop=True,
                extra={"assignee": step.assignee},
            )
        state = self.state_for_step()
        extra: dict[str, Any] = {}
        if step.kind == StepKind.CALLBACK:
            token = token_generator.token_urlsafe(32)
            state["callback_route"] = f"/api/processes/{process.pk}/callback/{token}/"
            # The step's code hands the token on; whatever it stores, logs or raises, under
            # any key or inside any text, is redacted of it like of a secret.
            self.redact = self.redact.also(token)
            expires = (
                timezone.now() + datetime.timedelta(seconds=step.callback_timeout)
                if step.callback_timeout
                else None
            )
            extra = {
                "callback_token": token_digest(token),
                "callback_expires_at": expires,
                "callback_progress": "",
            }
        with (
            running(process.pk, process.workflow.name, step.name, process.position),
            redacting(self.redact),
        ):
            result = call_with_state(step.func, state) if step.func else None
            if inspect.iscoroutine(result):  # an `async def` step: run here, to its end
                result = run_sync(result)
        if result is not None and not isinstance(result, dict):
            raise TypeError(f"step {step.name!r} returned {type(result).__name__}, not a dict")
        new_state = dict(process.state)
        for value in (result or {}).values():
            save = getattr(value, "__orchestrator_save__", None)
            if save is not None:  # a domain model returned by the step: saved in its transaction
                save()
        if result:
            cleaned = {k: v for k, v in result.items() if k not in self.secrets}
            cleaned.pop("callback_route", None)
            new_state.update(self.redact(to_json(cleaned)))
        if step.kind == StepKind.CALLBACK:
            return Outcome(
                StepStatus.AWAITING_CALLBACK,
                ProcessStatus.AWAITING_CALLBACK,
                new_state,
                following,
                stop=True,
                extra=extra,
            )
        return Outcome(StepStatus.SUCCESS, ProcessStatus.RUNNING, new_state, following)

    def commit(self, step: Step, outcome: Outcome, started: datetime.datetime) -> None:
        """Write the log row and the process's new state; refuse if the lease is gone."""
        now = timezone.now()
        log_row = {
            "process": self.process.pk,
            "name": step.name,
            "status": outcome.step_status,
            "state": outcome.state,
            "started_at": started,
            "completed_at": now,
        }
        values: dict[str, Any] = {
            "state": outcome.state,
            "position": outcome.position,
            "status": outcome.process_status,
            "last_modified_at": now,
            "delivery_count": 0,
            **(outcome.extra or {}),
        }
        if outcome.step_status == StepStatus.SUCCESS:
            values["retry_count"] = 0
        if outcome.stop:
            values.update(lease_owner="", lease_expires_at=None)
            if outcome.process_status in (ProcessStatus.COMPLETED, ProcessStatus.ABORTED):
                values["finished_at"] = now
        elif time.monotonic() >= self.renew_lease_at:
            # Renewed when a third of it has passed (the watching thread does the same
            # between steps), not by every step: a step that leaves every indexed column
            # as it was is a HOT update, no new entry in any of the process's indexes.
            values["lease_expires_at"] = lease_expiry()
            self.renew_lease_at = time.monotonic() + renewal_interval()
        if self.replanned:
            values["planned_steps"] = self.process.planned_steps
            self.replanned = False
        # A stopping step's extensions still write in its transaction (process_stopped).
        last_write = outcome.process_status not in extensions.STOPPED_STATUSES
        outcome.engine_paused = write_step(
            self.process.pk, self.owner, log_row, values, last_write=last_write
        )
        self.process.state = outcome.state
        self.process.position = self.stored_position = outcome.position
        self.process.status = outcome.process_status
        self.process.delivery_count = 0

    def update(self, values: dict[str, Any]) -> None:
        updated = Process.objects.filter(pk=self.process.pk, lease_owner=self.owner).update(
            **values
        )
        if updated != 1:
            raise LeaseLost(str(self.process.pk))
        for name, value in values.items():  # extensions told of the change see it
            setattr(self.process, name, value)

    def record_failure(self, step: Step, error: BaseException, started: datetime.datetime) -> None:
        status = classify_failure(error, step, self.process)
        message = error.message if isinstance(error, ProcessFailureError) else str(error)
        reason = f"{type(error).__name__}: {message}" if message else type(error).__name__
        if isinstance(error, ProcessFailureError) and error.details is not None:
            reason += f"\ndetails: {to_json(error.details)}"
        retry: dict[str, Any] = {}
        if status == ProcessStatus.WAITING:
            delay = retry_delay(self.process.retry_count)
            retry["retry_at"] = timezone.now() + datetime.timedelta(seconds=delay)
            retry["retry_count"] = self.process.retry_count + 1
        trace = "".join(traceback_module.format_exception(error))
        if self.store_failure(step.name, status, reason, trace, started, retry) != RECORDED:
            logger.warning("lost the lease of %s while recording a failure", self.process.pk)
            return
        if status == ProcessStatus.WAITING:
            from orchestrator.services import enqueue_process

            enqueue_process(self.process, countdown=retry_delay(self.process.retry_count))

    def give_back(self, step_name: str, error: BaseException) -> None:
        """The step's database session died under it (terminated, a failover, the network):
        the step is not at fault and its transaction is gone. Release the lease on a new
        session and enqueue the run again; the next claim reads where it stands (had the
        commit gone through before the session died, past this step). When the database
        cannot be reached, the lease expires and the sweep takes the run back."""
        logger.warning("the database session of %s died during step %r (%s); enqueued again",
                       self.process.pk, step_name, type(error).__name__)
        from orchestrator.services import enqueue_process

        try:
            with transaction.atomic():
                released = Process.objects.filter(
                    pk=self.process.pk, lease_owner=self.owner
                ).update(lease_owner="", lease_expires_at=None, last_modified_at=timezone.now())
                if released:
                    enqueue_process(self.process)
        except DatabaseError:
            logger.warning("could not give %s back; the sweep takes it back", self.process.pk)

    def fail_overdue(self, watched: WatchedStep) -> str:
        """From the watching thread: the step passed its time limit (see RunWatch.expire)."""
        return self.store_failure(
            watched.name, ProcessStatus.FAILED, exceeded(watched.name, watched.limit),
            stack_of(watched.thread_id), watched.started_at, at_position=watched.position,
        )

    def store_failure(
        self,
        step_name: str,
        status: str,
        reason: str,
        trace: str,
        started: datetime.datetime,
        extra: dict[str, Any] | None = None,
        at_position: int | None = None,
    ) -> str:
        """The failed step's log row and the process's failure, in one transaction, if this
        run still holds the lease (and, with `at_position`, the process is still at that
        step). Returns RECORDED, MOVED_ON (the step committed meanwhile) or LEASE_LOST."""
        values: dict[str, Any] = {
            "status": status,
            "failed_reason": self.redact(reason)[:10000],
            "traceback": self.redact(trace)[:50000],
            "last_modified_at": timezone.now(),
            "lease_owner": "",
            "lease_expires_at": None,
            "delivery_count": 0,
            **(extra or {}),
        }
        ours = Process.objects.filter(pk=self.process.pk, lease_owner=self.owner)
        waits = status == ProcessStatus.WAITING
        with transaction.atomic():
            at_step = ours if at_position is None else ours.filter(position=at_position)
            if not at_step.update(**values):
                return MOVED_ON if at_position is not None and ours.exists() else LEASE_LOST
            ProcessStep.objects.create(
                process_id=self.process.pk,
                name=step_name,
                status=StepStatus.WAITING if waits else StepStatus.FAILED,
                state={**self.process.state, "error": values["failed_reason"]},
                started_at=started,
                completed_at=timezone.now(),
            )
            self.tell_extensions(status)
        return RECORDED

    def tell_extensions(self, status: str) -> None:
        """A failure is recorded even when an extension cannot take note of it (logged)."""
        self.process.status = status
        try:
            with transaction.atomic():
                extensions.process_stopped(self.process, status)
        except Exception:
            logger.exception("an extension failed to note that %s is %s", self.process.pk, status)

    def fail_without_step(self, reason: str) -> None:
        try:
            with transaction.atomic():
                self.update(
                    {
                        "status": ProcessStatus.FAILED,
                        "failed_reason": self.redact(reason),
                        "traceback": "",
                        "lease_owner": "",
                        "lease_expires_at": None,
                        "last_modified_at": timezone.now(),
                    }
                )
                self.tell_extensions(ProcessStatus.FAILED)
        except LeaseLost:
            pass

    def park(self) -> None:
        """The engine is paused: give the process back as `queued` until it is unpaused."""
        try:
            self.update(
                {
                    "status": ProcessStatus.QUEUED,
                    "lease_owner": "",
                    "lease_expires_at": None,
                    "planned_steps": self.process.planned_steps,
                    "position": self.process.position,
                }
            )
        except LeaseLost:
            pass


def execute_run(process_id: str, run_watch: RunWatch) -> bool:
    """Claim the process and run it as far as it goes, in the calling thread; False when
    another worker holds it (or there is nothing to do)."""
    try:
        owner = new_lease_owner()
        process = claim(process_id, owner)
        if process is None:
            if selectors.engine_is_paused():  # it starts when the engine is unpaused
                Process.objects.filter(
                    pk=process_id, status__in=(ProcessStatus.CREATED, ProcessStatus.RESUMED)
                ).update(status=ProcessStatus.QUEUED)
            return False
        process_run = run_watch.run = ProcessRun(process, owner, run_watch)
        # What its steps log: redacted, and kept with the process (orchestrator.runlog).
        with redacting(process_run.redact), runlog.capturing(process.pk, process_run.redact):
            process_run.run()
        if process.workflow.concurrency_limit is not None:  # its slot is free: the next's turn
            concurrency.start_waiting_runs(process.workflow_id)
        return True
    finally:
        run_watch.close()


def run_process(process_id: str) -> bool:
    """Run a process as far as it goes, in this thread (in-process callers, tests).

    A watcher thread renews the lease and fails a step past its time limit, but this
    thread stays with such a step until its code returns: workers use
    `run_process_on_worker`, which gives the step up instead.
    """
    run_watch = RunWatch()
    watcher = threading.Thread(
        target=_watch_from_own_thread, args=(run_watch,), daemon=True, name=f"watch-{process_id}"
    )
    watcher.start()
    return execute_run(process_id, run_watch)


def _watch_from_own_thread(run_watch: RunWatch) -> None:
    try:
        watch(run_watch)
    finally:
        connection.close()


# The RunWatch of a worker's run whose stopping step is committing, on the thread that
# runs the step (see hand_off).
offering = threading.local()


def worker_shutting_down() -> bool:
    """Whether this worker was told to stop: a warm or cold shutdown sets one of these flags
    to an exit code (0 included) in the worker's main process, where its thread pool runs;
    they stay unset in a prefork pool's child processes and outside workers."""
    from celery.worker import state as worker_state

    return any(flag is not None and flag is not False
               for flag in (worker_state.should_stop, worker_state.should_terminate))


def hand_off(runs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Of `runs` (process id, queue) that a committing transaction enqueues, the ones to send
    to the broker. When that transaction is the last step of a worker's run (it stops the
    run: the process completed, failed, waits...), the worker is free as soon as it commits:
    it keeps the first run of its own task's queue and runs it next itself (a child its
    completion started, a parent its completion resumed), without the broker's round trip
    and the pick-up by another worker thread, which lay on the critical path of every
    dependent start. The kept run is not marked enqueued; should the worker die before
    claiming it, the sweep sends it as any run the broker never got. A worker shutting down
    keeps none: its warm shutdown waits for the run in hand, not for a chain of new ones."""
    run_watch = getattr(offering, "watch", None)
    if run_watch is None or run_watch.queue is None or run_watch.handed_off is not None:
        return runs
    if worker_shutting_down():
        return runs
    for index, (process_id, queue) in enumerate(runs):
        if queue == run_watch.queue:
            run_watch.handed_off = process_id
            return runs[:index] + runs[index + 1 :]
    return runs


def run_process_on_worker(process_id: str, queue: str | None = None) -> bool:
    """What the Celery task runs: the run executes on this thread's StepExecutor while this
    thread watches it. A step past its time limit is failed and given up, and this thread
    is free at once (orchestrator.timelimits). Then the run its last step handed off (given
    the `queue` the task came from, see `hand_off`), if any, and so on."""
    from orchestrator.services import send_runs

    executor = StepExecutor.for_this_thread()
    ran, next_id, handed_off = False, process_id, False
    while next_id is not None:
        run_watch = RunWatch(queue)
        job = executor.submit(execute_run, next_id, run_watch, continues_task=handed_off)
        if watch(run_watch):
            executor.abandon()
            send_runs(run_watch.kept_runs())  # this thread is not free for it after all
            return True
        job.done.wait()
        try:
            ran = job.outcome() or ran
        except BaseException:
            # A handed-off run that failed here (say its claim, on a connection that died
            # just after the run before used it: not checked again) goes to the broker now
            # rather than waiting for the sweep; a second delivery is harmless (the lease).
            retried = [(next_id, queue)] if handed_off and queue else []
            send_runs(run_watch.kept_runs() + retried)
            raise
        next_id, handed_off = run_watch.handed_off, True
    return ran
