"""Every user-visible action on the engine, called alike by pages, API, admin and tasks."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm

from orchestrator import concurrency, extensions, registry, selectors
from orchestrator.audit import record_action
from orchestrator.crypto import decrypt_json, encrypt_json, token_digest
from orchestrator.exceptions import (
    Conflict,
    FormInvalid,
    Gone,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    RunCancelled,
)
from orchestrator.forms import FormResult, form_json_schema, validate_pages
from orchestrator.injection import to_json
from orchestrator.models import (
    RETRYABLE_STATUSES,
    RUNNABLE_STATUSES,
    TERMINAL_STATUSES,
    EngineSettings,
    IdempotencyKey,
    Process,
    ProcessStatus,
    ProcessStep,
    ProcessTag,
    StepStatus,
    WorkerHeartbeat,
    Workflow,
)
from orchestrator.permissions import require, user_may
from orchestrator.redaction import Redactor, redactor_for
from orchestrator.runner import StepsGone, align_position, workflow_steps

logger = logging.getLogger(__name__)
MAX_CALLBACK_PROGRESS = 2000


def enqueue_process(process: Process, countdown: int | None = None) -> None:
    """Send the run task once the current transaction commits; a failed send waits for the sweep."""
    process_id, queue = str(process.pk), process.workflow.type

    def send() -> None:
        from orchestrator.tasks import run_process_task

        try:
            run_process_task.apply_async(args=[process_id], queue=queue, countdown=countdown)
        except Exception as error:  # noqa: BLE001 - the broker being down loses nothing
            logger.warning("could not enqueue %s (%s); the sweep will retry", process_id, error)
            return
        Process.objects.filter(pk=process_id).update(enqueued_at=timezone.now())

    transaction.on_commit(send)


def require_all_pages(result: FormResult, user) -> None:
    """Refuse partial input, answering with the schema of the page that is still needed."""
    if not result.complete:
        raise FormInvalid(
            "More input is needed: fill in the next page",
            {"input": ["Another page is required."]},
            form=form_json_schema(result.next_form, user=user),
        )


def log_user_action(process: Process, name: str, status: str, user) -> None:
    """A step-log row for something a user did (input submitted, abort), with who did it."""
    now = timezone.now()
    ProcessStep.objects.create(
        process=process,
        name=name,
        status=status,
        state=process.state,
        created_by=user if user is not None and user.is_authenticated else None,
        started_at=now,
        completed_at=now,
    )


def grant_creator_view(process: Process, user) -> None:
    """The user who starts a process may view it, whatever their roles say (or later say):
    an object grant, so every list, page and endpoint that filters by view permission
    shows it to them."""
    if user is not None and user.is_authenticated:
        assign_perm("orchestrator.view_process", user, process)


def get_workflow_for_start(workflow_name: str, user=None) -> tuple[Workflow, Any]:
    """The workflow's row and definition; one the user may not view is unknown to them
    (the same 404 and message), so a refusal never tells which names exist."""
    definition = registry.get_definition(workflow_name)
    row = Workflow.objects.filter(name=workflow_name).first()
    if definition is None or row is None or not user_may(user, "orchestrator.view_workflow", row):
        raise NotFound(f"Unknown workflow {workflow_name!r}")
    return row, definition


def start_form_state(targets: dict[str, Any]) -> dict[str, Any]:
    """The state a start's input forms are built from, given its (resolved) targets."""
    state: dict[str, Any] = {}
    for extension, own in extensions.split_targets(targets):
        state.update(extension.form_state(own))
    return state


def start_process(
    *,
    workflow_name: str,
    input_pages: list[Any] | None = None,
    user=None,
    tags: Iterable[str] = (),
    parent: Process | None = None,
    run_name: str = "",
    call_key: str = "",
    **targets: Any,
) -> Process:
    """Validate the input, store the process and enqueue it when the transaction commits.

    `targets` name what the run is for, each owned by a domain app's extension
    (`subscription=` for modify/terminate/validate workflows, `product=` for create
    workflows, ...): the extension refuses what the user may not see, and may veto or
    prepare the start inside the transaction that stores the process.

    A workflow whose `cancel_new` concurrency limit is full gets its run stored
    `cancelled`, with the reason, and the caller a `RunCancelled` error (HTTP 409).
    `run_name` defaults to `<workflow> <short id>`; `call_key` marks a child run with the
    call of its parent's step that started it.
    """
    owned = extensions.split_targets(targets)
    owned = [(extension, extension.resolve_targets(user, own)) for extension, own in owned]
    workflow_row, definition = get_workflow_for_start(workflow_name, user)
    require(user, "orchestrator.start_workflow", workflow_row)
    spec = definition.load()
    if spec.run_predicate is not None:
        refusal = spec.run_predicate(workflow_name)
        if refusal:
            raise PreconditionFailed(str(refusal))
    form_state = start_form_state({k: v for _, own in owned for k, v in own.items()})
    pages = [] if input_pages is None else input_pages
    result = validate_pages(spec.initial_input_form, pages, state=form_state, user=user)
    require_all_pages(result, user)
    for extension, own in owned:
        extension.check_input(workflow=workflow_row, targets=own, data=result.data)
    with transaction.atomic():
        over_limit = concurrency.start_refusal(workflow_row)
        reservations = [] if over_limit else [
            reservation
            for extension, own in owned
            if (reservation := extension.reserve(
                workflow=workflow_row, targets=own, pages=pages, user=user
            ))
        ]
        status = ProcessStatus.QUEUED if selectors.engine_is_paused() else ProcessStatus.CREATED
        secrets = dict(result.secrets)
        state = dict(result.data)
        for reservation in reservations:
            state.update(reservation.state)
            secrets.update(reservation.secrets)
        process = Process(
            workflow=workflow_row,
            status=status,
            is_task=definition.is_task,
            created_by=user if user is not None and user.is_authenticated else None,
            planned_steps=spec.steps.names,
            parent=parent,
            call_key=call_key[:255],
            secrets=encrypt_json(secrets),
        )
        process.run_name = (run_name or default_run_name(workflow_name, process))[:255]
        process.state = {
            **Redactor(secrets)(state),
            "process_id": str(process.pk),
            "workflow_name": workflow_name,
        }
        if over_limit:
            process.status, process.failed_reason = ProcessStatus.CANCELLED, over_limit
            process.finished_at = timezone.now()
        process.save(force_insert=True)
        grant_creator_view(process, user)
        for reservation in reservations:
            if reservation.link is not None:
                reservation.link(process)
        ProcessTag.objects.bulk_create(
            ProcessTag(process=process, name=str(tag)[:255]) for tag in dict.fromkeys(tags)
        )
        if user is not None:  # a person's start (the system's are its schedules and sub-runs)
            named = {k: str(v) for _, own in owned for k, v in own.items() if v not in (None, "")}
            cancelled = " (cancelled by its concurrency limit)" if over_limit else ""
            record_action("process.start", user=user, target=process,
                          summary=f"Started {workflow_name}{cancelled}", detail=named)
        if over_limit:
            extensions.process_stopped(process, ProcessStatus.CANCELLED)
        else:
            enqueue_process(process)
    if over_limit:
        raise RunCancelled(over_limit, process)
    return process


def request_fingerprint(value: Any) -> str:
    """A digest of a request's content: the same for the same JSON, whatever its key order."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def start_process_once(
    *, idempotency_key: str, fingerprint: str, user, **start: Any
) -> tuple[Process, bool]:
    """`start_process`, once per user and key: the key sent again answers with the run its
    first use started (and True). With another request (`fingerprint`) it is refused (422).

    The key's row is written first, in the start's transaction: a concurrent request with
    the same key waits on its unique index until the first commits, then answers with the
    first's run, so a double submit makes one run. A refused start stores no key (it may
    be sent again); keys expire after ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS.
    """
    expired = timezone.now() - datetime.timedelta(
        hours=settings.ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS
    )
    with transaction.atomic():
        mine = IdempotencyKey.objects.filter(user=user, key=idempotency_key)
        mine.filter(created_at__lt=expired).delete()
        try:
            with transaction.atomic():
                claim = IdempotencyKey.objects.create(
                    user=user, key=idempotency_key, fingerprint=fingerprint
                )
        except IntegrityError:
            first = mine.select_related("process__workflow").get()
            if first.fingerprint != fingerprint:
                message = (
                    "This idempotency key was already used with a different request "
                    f"(it started process {first.process_id}); use a new key for a new run"
                )
                raise IdempotencyKeyReused(message, {"idempotency_key": [message]}) from None
            return first.process, True
        try:
            process = start_process(user=user, **start)
        except RunCancelled as error:  # the cancelled run stays stored; the key does not
            claim.delete()
            cancelled = error
        else:
            claim.process = process
            claim.save(update_fields=["process"])
            cancelled = None
    if cancelled is not None:
        raise cancelled
    return process, False


def clean_up_idempotency_keys() -> int:
    """Delete the idempotency keys past ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS."""
    expired = timezone.now() - datetime.timedelta(
        hours=settings.ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS
    )
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=expired).delete()
    return deleted


def default_run_name(workflow_name: str, process: Process) -> str:
    """`<workflow> <first 8 characters of the id>`: short, and unique enough to tell runs apart."""
    return f"{workflow_name} {str(process.pk)[:8]}"


def resume_process(*, process: Process, input_pages: list[Any] | None = None, user=None) -> Process:
    """Submit input to a suspended process, or retry a failed/waiting one from its failed step."""
    require(user, "orchestrator.resume_process", process)
    with transaction.atomic():
        process = Process.objects.select_for_update().select_related("workflow").get(pk=process.pk)
        if process.status == ProcessStatus.SUSPENDED:
            step_name = process.next_step_name
            submit_input(process, input_pages or [], user)
            record_action("process.resume", user=user, target=process,
                          summary=f"Submitted the input of {step_name}")
        elif process.status in RETRYABLE_STATUSES:
            record_action("process.retry", user=user, target=process,
                          summary=f"Retried the {process.status} process")
            try:
                align_position(process, workflow_steps(process))
            except StepsGone as error:
                raise Conflict(f"Cannot resume: {error}") from None
            if process.status != ProcessStatus.WAITING:  # a person retries: attempts anew
                process.retry_count = 0
            process.status = ProcessStatus.RESUMED
            process.failed_reason = process.traceback = ""
            process.retry_at = None
            process.save(
                update_fields=[
                    "status", "failed_reason", "traceback", "retry_at", "retry_count",
                    "last_modified_at",
                ]
            )
        else:
            raise Conflict(f"Process is {process.status}: it cannot be resumed")
        enqueue_process(process)
    return process


def submit_input(process: Process, input_pages: list[Any], user) -> None:
    steps = workflow_steps(process)
    position = align_position(process, steps)
    step = steps[position]
    state = selectors.input_state(process)
    result = validate_pages(step.func, list(input_pages), state=state, user=user)
    require_all_pages(result, user)
    secrets = {**decrypt_json(process.secrets), **result.secrets}
    process.state = {**process.state, **Redactor(secrets)(result.data)}
    if result.secrets:
        process.secrets = encrypt_json(secrets)
    log_user_action(process, step.name, StepStatus.SUCCESS, user)
    process.planned_steps = steps.names
    process.position = position + 1
    process.status = ProcessStatus.RESUMED
    process.save()


def abort_process(*, process: Process, user=None) -> Process:
    """End a process on purpose; a worker running it loses its lease and commits nothing more."""
    require(user, "orchestrator.abort_process", process)
    with transaction.atomic():
        process = Process.objects.select_for_update().get(pk=process.pk)
        if process.status in TERMINAL_STATUSES:
            raise Conflict(f"Process is {process.status}: it cannot be aborted")
        now = timezone.now()
        log_user_action(process, "Abort", StepStatus.ABORT, user)
        process.status = ProcessStatus.ABORTED
        process.finished_at = now
        process.lease_owner, process.lease_expires_at = "", None
        process.callback_token = None
        process.save()
        record_action("process.abort", user=user, target=process,
                      summary=f"Aborted {process.workflow.name}")
        extensions.process_stopped(process, ProcessStatus.ABORTED)
        workflow_id = process.workflow_id
        transaction.on_commit(lambda: concurrency.start_waiting_runs(workflow_id))  # its slot
    return process


def delete_process(*, process: Process, user=None) -> None:
    """Delete a task run; runs of real workflows are kept for audit."""
    require(user, "orchestrator.delete_process", process)
    if not process.is_task:
        raise Conflict("Only task runs can be deleted; workflow runs are kept for audit")
    if process.status in RUNNABLE_STATUSES and process.lease_owner:
        raise Conflict("The process is running; abort it first")
    with transaction.atomic():
        record_action("process.delete", user=user, target=process,
                      summary=f"Deleted a {process.status} task run")
        process.delete()


class CallbackExpired(Exception):
    """The token is right but its callback step's timeout has passed."""

    def __init__(self, process: Process) -> None:
        super().__init__(str(process.pk))
        self.process = process


def find_callback_process(process_id: Any, token: str) -> Process:
    """The process awaiting a callback with this token, locked; an expired token is
    refused on use, not only at the next sweep."""
    process = (
        Process.objects.select_for_update()
        .select_related("workflow")
        .filter(
            pk=process_id,
            status=ProcessStatus.AWAITING_CALLBACK,
            callback_token=token_digest(str(token)),
        )
        .first()
    )
    if process is None:
        raise NotFound("Unknown or already used callback token")
    if process.callback_expires_at is not None and process.callback_expires_at <= timezone.now():
        raise CallbackExpired(process)
    return process


def refuse_expired_callback(expired: CallbackExpired) -> Gone:
    """Fail the run as the sweep would (callback timed out) and say so to the caller."""
    fail_timed_out_callback(expired.process)
    return Gone(
        "The callback token has expired: the callback step timed out and the process failed"
    )


def handle_callback(*, process_id: Any, token: str, body: Any) -> Process:
    """The external system reports back: its body lands in `callback_result`."""
    if not isinstance(body, dict):
        raise FormInvalid("The callback body must be a JSON object", {"body": ["Not an object."]})
    try:
        with transaction.atomic():
            process = find_callback_process(process_id, token)
            process.state = {
                **process.state, "callback_result": redactor_for(process, token)(to_json(body))
            }
            process.callback_token = None
            process.callback_expires_at = None
            process.status = ProcessStatus.RESUMED
            process.save()
            enqueue_process(process)
    except CallbackExpired as expired:
        raise refuse_expired_callback(expired) from None
    return process


def record_callback_progress(*, process_id: Any, token: str, message: Any) -> Process:
    if not isinstance(message, str) or not message.strip():
        raise FormInvalid("'message' must be a non-empty string", {"message": ["Required."]})
    try:
        with transaction.atomic():
            process = find_callback_process(process_id, token)
            redact = redactor_for(process, token)
            process.callback_progress = redact(message)[:MAX_CALLBACK_PROGRESS]
            process.save(update_fields=["callback_progress", "last_modified_at"])
    except CallbackExpired as expired:
        raise refuse_expired_callback(expired) from None
    return process


def set_engine_paused(*, paused: bool, user=None) -> EngineSettings:
    """Pause (steps in flight finish, no new step starts) or unpause (everything goes on)."""
    require(user, "orchestrator.pause_engine")
    with transaction.atomic():
        engine, _ = EngineSettings.objects.select_for_update().get_or_create(pk=1)
        engine.paused = paused
        engine.changed_by = user if user is not None and user.is_authenticated else None
        engine.changed_at = timezone.now()
        engine.save()
        record_action(
            "engine.pause" if paused else "engine.unpause", user=user, target=engine,
            summary="Paused the engine" if paused else "Unpaused the engine",
        )
        if not paused:
            for process in Process.objects.filter(
                status__in=RUNNABLE_STATUSES, lease_owner=""
            ).select_related("workflow"):
                enqueue_process(process)
    return engine


def recover_processes() -> int:
    """The sweep: take back runs whose worker died, enqueue runs the broker never got,
    start runs waiting for concurrency slots that dead workers' leases freed, and fail
    callbacks that timed out. Returns how many runs were enqueued."""
    now = timezone.now()
    for process in Process.objects.filter(status=ProcessStatus.AWAITING_CALLBACK,
                                          callback_expires_at__lt=now):
        fail_timed_out_callback(process)
    if selectors.engine_is_paused():
        return 0
    stale = now - datetime.timedelta(seconds=settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS)
    expired_lease = Q(lease_expires_at__lt=now) & ~Q(lease_owner="")
    never_picked_up = (
        Q(lease_owner="")
        & (Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale))
        & Q(last_modified_at__lt=stale)
        & Q(slot_requested_at__isnull=True)  # waiting for a slot: started below, in turn
    )
    count = 0
    candidates = Process.objects.filter(status__in=RUNNABLE_STATUSES).filter(
        expired_lease | never_picked_up
    )
    for process in candidates.select_related("workflow"):
        # Conditional on what was read, so a worker that just took the lease keeps it.
        released = Process.objects.filter(
            pk=process.pk,
            lease_owner=process.lease_owner,
            lease_expires_at=process.lease_expires_at,
        ).update(lease_owner="", lease_expires_at=None)
        if released:
            enqueue_process(process)
            count += 1
    # Slots freed by leases that expired (dead workers) go to the runs waiting for them.
    for workflow_id in concurrency.workflows_with_waiting_runs():
        count += concurrency.start_waiting_runs(workflow_id)
    return count


def fail_timed_out_callback(process: Process) -> None:
    """The callback never came: fail, with the action step next so a retry issues a new token."""
    with transaction.atomic():
        updated = Process.objects.filter(
            pk=process.pk, status=ProcessStatus.AWAITING_CALLBACK
        ).update(
            status=ProcessStatus.FAILED,
            failed_reason="Callback timed out",
            callback_token=None,
            callback_expires_at=None,
            position=max(process.position - 1, 0),
            last_modified_at=timezone.now(),
        )
        if updated:
            now = timezone.now()
            ProcessStep.objects.create(
                process=process,
                name=process.planned_steps[max(process.position - 1, 0)],
                status=StepStatus.FAILED,
                state={**process.state, "error": "Callback timed out"},
                started_at=now,
                completed_at=now,
            )
            extensions.process_stopped(process, ProcessStatus.FAILED)


def resume_waiting_processes() -> int:
    """Retry the `waiting` processes whose backoff has passed."""
    due = Process.objects.filter(status=ProcessStatus.WAITING, retry_at__lte=timezone.now())
    count = 0
    for process in due.select_related("workflow"):
        with transaction.atomic():
            if Process.objects.filter(pk=process.pk, status=ProcessStatus.WAITING).update(
                status=ProcessStatus.RESUMED, retry_at=None
            ):
                enqueue_process(process)
                count += 1
    return count


def clean_up_task_runs(*, older_than_days: int | None = None) -> int:
    """Delete completed task runs older than the retention period."""
    days = settings.ORCHESTRATOR_TASK_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - datetime.timedelta(days=days)
    deleted, _ = Process.objects.filter(
        is_task=True, status=ProcessStatus.COMPLETED, finished_at__lt=cutoff
    ).delete()
    return deleted


def workflow_changes() -> list[tuple[str, str, dict[str, Any]]]:
    """The differences between the code registry and the database, as (action, name, values)."""
    from orchestrator.schedules import cron_of, workflow_schedules

    rows = {row.name: row for row in Workflow.objects.all()}
    schedules = workflow_schedules()
    changes: list[tuple[str, str, dict[str, Any]]] = []
    for definition in registry.all_definitions():
        values = definition.catalogue_row()
        row = rows.pop(definition.name, None)
        if row is None:
            changes.append(("add", definition.name, values))
        else:
            differing = {k: v for k, v in values.items() if getattr(row, k) != v}
            if differing:
                changes.append(("update", definition.name, differing))
        schedule = schedules.pop(definition.name, None)
        if (cron_of(schedule) if schedule else "") != definition.cron:
            changes.append(("schedule", definition.name, {"cron": definition.cron}))
    for name, row in rows.items():
        if row.removed_at is None:
            changes.append(("remove", name, {}))
    for name in schedules:
        changes.append(("schedule", name, {"cron": ""}))
    return changes + extensions.catalogue_changes(registry.all_definitions())


def sync_workflows() -> list[tuple[str, str, dict[str, Any]]]:
    """Apply `workflow_changes()`; a removed workflow with runs is kept for their audit.
    Domain apps apply theirs after the rows are written (products from `product_types`)."""
    from orchestrator.schedules import ensure_sweep_schedule, set_workflow_schedule

    changes = workflow_changes()
    with transaction.atomic():
        for action, name, values in changes:
            definition = registry.get_definition(name)
            if action == "add":
                Workflow.objects.create(name=name, **values)
            elif action == "update":
                Workflow.objects.filter(name=name).update(**values)
            elif action == "remove":
                Workflow.objects.filter(name=name, processes__isnull=True).delete()
                Workflow.objects.filter(name=name).update(removed_at=timezone.now())
            elif action == "schedule":
                queue = str(definition.type) if definition else "core"
                set_workflow_schedule(name, values["cron"], queue)
        extensions.catalogue_changes(registry.all_definitions(), apply=True)
        ensure_sweep_schedule()
        if changes:  # what migrate_workflows --apply (or a deployment) changed, schedules too
            record_action(
                "workflows.sync", summary=f"Applied {len(changes)} workflow change(s)",
                detail={"changes": [{"action": action, "workflow": name, "values": values}
                                    for action, name, values in changes]},
            )
    return changes


# --- worker heartbeats (orchestrator.heartbeat) ---------------------------------------------

# A worker row not seen for this long is forgotten when another worker starts.
FORGET_WORKERS_AFTER = datetime.timedelta(days=7)


def record_worker_heartbeat(
    *, name: str, hostname: str, pid: int, queues: Iterable[str], pool: str, concurrency: int,
    started_at: datetime.datetime,
) -> WorkerHeartbeat:
    """A worker says it is alive (at start and every ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS)."""
    worker, _ = WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={
            "hostname": hostname, "pid": pid, "queues": sorted(queues), "pool": pool,
            "concurrency": concurrency, "started_at": started_at,
            "last_seen_at": timezone.now(), "stopped_at": None,
        },
    )
    return worker


def record_worker_stopped(*, name: str, pid: int) -> None:
    """A worker stops cleanly (warm or cold shutdown); a newer one of that name is left be."""
    WorkerHeartbeat.objects.filter(name=name, pid=pid).update(
        stopped_at=timezone.now(), last_seen_at=timezone.now()
    )


def forget_old_workers() -> int:
    """Delete the rows of workers not seen for FORGET_WORKERS_AFTER."""
    cutoff = timezone.now() - FORGET_WORKERS_AFTER
    return WorkerHeartbeat.objects.filter(last_seen_at__lt=cutoff).delete()[0]
