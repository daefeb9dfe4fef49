"""Every user-visible action on the engine, called alike by pages, API, admin and tasks."""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from orchestrator import concurrency, extensions, registry, rows, selectors
from orchestrator.audit import audit_event, record_action
from orchestrator.crypto import decrypt_json, encrypt_json, token_digest
from orchestrator.exceptions import (
    Conflict,
    FormInvalid,
    Gone,
    IdempotencyKeyReused,
    NotFound,
    OrchestratorError,
    PreconditionFailed,
    RunCancelled,
)
from orchestrator.forms import FormResult, form_json_schema, validate_pages
from orchestrator.injection import to_json
from orchestrator.models import (
    RETRYABLE_STATUSES,
    RUNNABLE_STATUSES,
    TERMINAL_STATUSES,
    AuditEvent,
    EngineSettings,
    IdempotencyKey,
    Process,
    ProcessStatus,
    ProcessStep,
    ProcessTag,
    ProcessUserObjectPermission,
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
    enqueue_processes([process], countdown=countdown)


def enqueue_processes(processes: list[Process], countdown: int | None = None) -> None:
    """Send the run tasks of `processes` once the current transaction commits (`send_runs`);
    a failed send waits for the sweep (the runs are stored first, so the broker being down
    loses none). When that commit is the last step of a worker's run, the worker keeps one
    of them to run next itself instead (`runner.hand_off`)."""
    runs = [(str(process.pk), process.workflow.type) for process in processes]
    if not runs:
        return

    def send() -> None:
        from orchestrator.runner import hand_off

        send_runs(runs if countdown is not None else hand_off(runs), countdown=countdown)

    transaction.on_commit(send)


def send_runs(runs: list[tuple[str, str]], countdown: int | None = None) -> None:
    """Send the run tasks of `runs` (process id, queue) now, over one broker connection,
    then mark them enqueued in one UPDATE; a failed send waits for the sweep.

    The messages go out as one batch (kombu's `Producer.batch`: on Redis one pipeline,
    one round trip and one client for all of them, where a message each cost a client
    and a round trip; RabbitMQ publishes them one by one as before). A batch that fails
    may have delivered some of them: none is marked enqueued, so the sweep sends them
    again, and a run sent twice is claimed once (its lease)."""
    if not runs:
        return
    from orchestrator.tasks import run_process_task

    try:
        with run_process_task.app.producer_or_acquire() as producer, producer.batch():
            for process_id, queue in runs:
                run_process_task.apply_async(
                    args=[process_id], queue=queue, countdown=countdown, producer=producer
                )
    except Exception as error:  # noqa: BLE001 - the broker being down loses nothing
        logger.warning("could not enqueue %d run(s) (%s); the sweep will retry",
                       len(runs), error)
        return
    Process.objects.filter(pk__in=[process_id for process_id, _ in runs]).update(
        enqueued_at=timezone.now()
    )


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


def grant_creator_view(processes: list[Process], user) -> None:
    """The user who starts a process may view it, whatever their roles say (or later say):
    an object grant, so every list, page and endpoint that filters by view permission
    shows it to them. The runs are new, so their grants are one INSERT."""
    if user is None or not user.is_authenticated or not processes:
        return
    permission = Permission.objects.get(
        content_type__app_label="orchestrator", codename="view_process"
    )
    ProcessUserObjectPermission.objects.bulk_create(
        ProcessUserObjectPermission(user=user, permission=permission, content_object=process)
        for process in processes
    )


# The whole catalogue row, as the ORM would load it.
WORKFLOW_ROW: rows.Part = (Workflow, "w", rows.concrete_names(Workflow))


def workflow_named(name: str) -> Workflow | None:
    """The catalogue row of `name` (unique): read at every start, so its SQL is made once
    (orchestrator.rows) instead of an ORM query built each time."""
    found = rows.select(
        (WORKFLOW_ROW,),
        f"FROM {rows.table(Workflow)} w WHERE {rows.column('w', Workflow, 'name')} = %s",
        [name],
    )
    return found[0][0] if found else None


def get_workflow_for_start(workflow_name: str, user=None) -> tuple[Workflow, Any]:
    """The workflow's row and definition; one the user may not view is unknown to them
    (the same 404 and message), so a refusal never tells which names exist."""
    definition = registry.get_definition(workflow_name)
    row = workflow_named(workflow_name) if definition is not None else None
    if definition is None or row is None or not user_may(user, "orchestrator.view_workflow", row):
        raise NotFound(f"Unknown workflow {workflow_name!r}")
    return row, definition


def start_form_state(targets: dict[str, Any]) -> dict[str, Any]:
    """The state a start's input forms are built from, given its (resolved) targets."""
    state: dict[str, Any] = {}
    for extension, own in extensions.split_targets(targets):
        state.update(extension.form_state(own))
    return state


@dataclass
class StartRequest:
    """What one start asks for: `start_process`'s arguments (`targets`: its keywords owned
    by extensions, such as `subscription=`)."""

    workflow_name: str
    input_pages: list[Any] | None = None
    tags: Iterable[str] = ()
    parent: Process | None = None
    run_name: str = ""
    call_key: str = ""
    targets: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, *, workflow_name: str, input_pages: list[Any] | None = None,
           tags: Iterable[str] = (), parent: Process | None = None, run_name: str = "",
           call_key: str = "", **targets: Any) -> StartRequest:
        """From `start_process`'s keyword arguments."""
        return cls(workflow_name, input_pages, tags, parent, run_name, call_key, targets)


@dataclass
class CheckedStart:
    """A start that passed every check made before its transaction (`check_start`)."""

    request: StartRequest
    workflow: Workflow
    definition: Any
    spec: Any
    owned: list[tuple[extensions.ProcessExtension, dict[str, Any]]]
    pages: list[Any]
    form: FormResult


def check_start(
    request: StartRequest, user=None, workflows: dict[str, tuple[Workflow, Any]] | None = None
) -> CheckedStart:
    """Everything a start checks before anything is stored: the targets the user may see,
    the workflow they may view and start, its run predicate, the input (all pages, valid)
    and the extensions' view of that input. `workflows` remembers the workflow checks of
    earlier starts of the same request (a batch)."""
    owned = extensions.split_targets(request.targets)
    owned = [(extension, extension.resolve_targets(user, own)) for extension, own in owned]
    known = None if workflows is None else workflows.get(request.workflow_name)
    if known is None:
        known = get_workflow_for_start(request.workflow_name, user)
        require(user, "orchestrator.start_workflow", known[0])
        if workflows is not None:
            workflows[request.workflow_name] = known
    workflow_row, definition = known
    spec = definition.load()
    if spec.run_predicate is not None:
        refusal = spec.run_predicate(request.workflow_name)
        if refusal:
            raise PreconditionFailed(str(refusal))
    form_state = start_form_state({k: v for _, own in owned for k, v in own.items()})
    pages = [] if request.input_pages is None else request.input_pages
    result = validate_pages(spec.initial_input_form, pages, state=form_state, user=user)
    require_all_pages(result, user)
    for extension, own in owned:
        extension.check_input(workflow=workflow_row, targets=own, data=result.data)
    return CheckedStart(request, workflow_row, definition, spec, owned, pages, result)


class StartVetoed(Exception):
    """An extension vetoed the start at `index` of `store_starts` with `error`."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def for_run(index: int, error: Exception) -> Exception:
    """A batch's refusal of its run at `index`: `error`, naming the run (`runs[3]: ...`,
    its field errors under `runs` and the index)."""
    if not isinstance(error, OrchestratorError):
        return PermissionDenied(f"runs[{index}]: {error}")
    refusal = type(error).__new__(type(error))
    refusal.__dict__.update(error.__dict__)
    refusal.message = f"runs[{index}]: {error.message}"
    refusal.args = (refusal.message,)
    refusal.field_errors = {"runs": {str(index): {**error.field_errors, "detail": error.message}}}
    return refusal


def store_starts(starts: list[CheckedStart], user=None) -> list[Process]:
    """Inside the caller's transaction: store the checked starts' runs (the extensions may
    still veto or prepare each one), with their grants, tags and audit events, a few
    statements for all of them, and enqueue them when the transaction commits.

    A run of a workflow whose `cancel_new` concurrency limit is full (counting the runs
    accepted before it in `starts`) is stored `cancelled`, with the reason, and not enqueued.
    """
    status = ProcessStatus.QUEUED if selectors.engine_is_paused() else ProcessStatus.CREATED
    created_by = user if user is not None and user.is_authenticated else None
    accepted: Counter[int] = Counter()  # runs of each workflow accepted so far
    processes: list[Process] = []
    links: list[tuple[Any, Process]] = []
    tags: list[ProcessTag] = []
    events = []
    for start in starts:
        request, workflow_row = start.request, start.workflow
        over_limit = concurrency.start_refusal(workflow_row, pending=accepted[workflow_row.pk])
        try:
            reservations = [] if over_limit else [
                reservation
                for extension, own in start.owned
                if (reservation := extension.reserve(
                    workflow=workflow_row, targets=own, pages=start.pages, user=user
                ))
            ]
        except (OrchestratorError, PermissionDenied) as error:
            raise StartVetoed(len(processes), error) from error
        secrets = dict(start.form.secrets)
        state = dict(start.form.data)
        for reservation in reservations:
            state.update(reservation.state)
            secrets.update(reservation.secrets)
        process = Process(
            workflow=workflow_row,
            status=status,
            is_task=start.definition.is_task,
            created_by=created_by,
            planned_steps=start.spec.steps.names,
            parent=request.parent,
            call_key=request.call_key[:255],
            secrets=encrypt_json(secrets),
        )
        name = request.workflow_name
        process.run_name = (request.run_name or default_run_name(name, process))[:255]
        process.state = {
            **Redactor(secrets)(state), "process_id": str(process.pk), "workflow_name": name,
        }
        if over_limit:
            process.status, process.failed_reason = ProcessStatus.CANCELLED, over_limit
            process.finished_at = timezone.now()
        else:
            accepted[workflow_row.pk] += 1
        processes.append(process)
        links.extend((r.link, process) for r in reservations if r.link is not None)
        tags.extend(ProcessTag(process=process, name=str(tag)[:255])
                    for tag in dict.fromkeys(request.tags))
        if user is not None:  # a person's start (the system's are its schedules and sub-runs)
            named = {k: str(v) for _, own in start.owned for k, v in own.items()
                     if v not in (None, "")}
            cancelled = " (cancelled by its concurrency limit)" if over_limit else ""
            events.append(audit_event("process.start", user=user, target=process,
                                      summary=f"Started {name}{cancelled}", detail=named))
    rows.insert(processes)
    grant_creator_view(processes, user)
    for link, process in links:
        link(process)
    ProcessTag.objects.bulk_create(tags)
    AuditEvent.objects.bulk_create(events)
    for process in processes:
        if process.status == ProcessStatus.CANCELLED:
            extensions.process_stopped(process, ProcessStatus.CANCELLED)
    enqueue_processes([p for p in processes if p.status != ProcessStatus.CANCELLED])
    return processes


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
    request = StartRequest(workflow_name, input_pages, tags, parent, run_name, call_key, targets)
    with transaction.atomic():  # a refusal undoes whatever an extension wrote before it
        process = start_in_transaction(request, user)
    if process.status == ProcessStatus.CANCELLED:
        raise RunCancelled(process.failed_reason, process)
    return process


def start_in_transaction(request: StartRequest, user=None) -> Process:
    """Check one start and store it in the caller's transaction, with no savepoint of its
    own: the process (a run its `cancel_new` limit cancelled too, as stored), or the
    refusal raised. Only for callers whose targets no extension writes for before refusing
    (a blueprint step's start); `start_process` wraps it in a savepoint."""
    checked = check_start(request, user)
    try:
        [process] = store_starts([checked], user)
    except StartVetoed as vetoed:
        raise vetoed.error from None
    return process


def request_fingerprint(value: Any) -> str:
    """A digest of a request's content: the same for the same JSON, whatever its key order."""
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def claim_idempotency_key(user, key: str, fingerprint: str) -> IdempotencyKey | Process:
    """Inside the start's transaction: the key's row, new (the start goes on and links its
    run to it), or the run its first use started (answer with that). The row is written
    first: a concurrent request with the same key waits on its unique index until the
    first commits. With another request (`fingerprint`) the key is refused (422)."""
    expired = timezone.now() - datetime.timedelta(
        hours=settings.ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS
    )
    mine = IdempotencyKey.objects.filter(user=user, key=key)
    mine.filter(created_at__lt=expired).delete()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(user=user, key=key, fingerprint=fingerprint)
    except IntegrityError:
        first = mine.select_related("process__workflow").get()
    if first.fingerprint != fingerprint:
        message = (
            "This idempotency key was already used with a different request "
            f"(it started process {first.process_id}); use a new key for a new run"
        )
        raise IdempotencyKeyReused(message, {"idempotency_key": [message]})
    return first.process


def start_process_once(
    *, idempotency_key: str, fingerprint: str, user, **start: Any
) -> tuple[Process, bool]:
    """`start_process`, once per user and key: the key sent again answers with the run its
    first use started (and True). With another request (`fingerprint`) it is refused (422).

    A concurrent request with the same key waits until the first commits, then answers
    with the first's run, so a double submit makes one run (`claim_idempotency_key`). A
    refused start stores no key (it may be sent again); keys expire after
    ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS.
    """
    with transaction.atomic():
        claim = claim_idempotency_key(user, idempotency_key, fingerprint)
        if isinstance(claim, Process):
            return claim, True
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


@dataclass
class BatchRun:
    """One run of a batch start: what it asks for, and its idempotency key (optional)."""

    request: StartRequest
    idempotency_key: str = ""
    fingerprint: str = ""


MAX_BATCH_RUNS = 1000


def start_processes(*, runs: list[BatchRun], user=None) -> list[tuple[Process, bool]]:
    """Start many runs in one transaction: all of them or none. Each is checked as
    `start_process` checks one (a refusal names the run by its index: `runs[3]`), the
    runs are stored with a few statements for all of them, and their tasks are sent over
    one broker connection once the transaction commits.

    Returns `(process, replayed)` per run, in order: a run whose idempotency key was used
    before answers with the run its first use started, as `start_process_once` does. A run
    beyond a full `cancel_new` concurrency limit is stored `cancelled` (its key is not
    kept); the others still start.
    """
    if len(runs) > MAX_BATCH_RUNS:
        raise FormInvalid(f"at most {MAX_BATCH_RUNS} runs per batch",
                          {"runs": [f"Ensure this list has at most {MAX_BATCH_RUNS} items."]})
    workflows: dict[str, tuple[Workflow, Any]] = {}
    checked: list[CheckedStart] = []
    invalid: dict[str, dict[str, Any]] = {}
    keys: dict[str, int] = {}
    for index, run in enumerate(runs):
        try:
            checked.append(check_start(run.request, user, workflows))
        except FormInvalid as error:  # every invalid run is named, not only the first
            invalid[str(index)] = {**error.field_errors, "detail": error.message}
        except (OrchestratorError, PermissionDenied) as error:
            raise for_run(index, error) from None
        first = keys.setdefault(run.idempotency_key, index) if run.idempotency_key else index
        if first != index:  # one key, one run: a second run with it could never be told apart
            message = f"runs[{first}] has the same idempotency key"
            invalid.setdefault(str(index), {"idempotency_key": [message], "detail": message})
    if invalid:
        first = next(iter(invalid))
        raise FormInvalid(
            f"{len(invalid)} of the {len(runs)} runs are invalid; runs[{first}]: "
            f"{invalid[first]['detail']}",
            {"runs": invalid},
        )
    with transaction.atomic():
        answers: list[tuple[Process, bool] | None] = [None] * len(runs)
        claims: dict[int, IdempotencyKey] = {}
        new: list[int] = []
        for index, run in enumerate(runs):
            try:
                claim = (claim_idempotency_key(user, run.idempotency_key, run.fingerprint)
                         if run.idempotency_key else None)
            except IdempotencyKeyReused as error:
                raise for_run(index, error) from None
            if isinstance(claim, Process):
                answers[index] = (claim, True)
                continue
            if claim is not None:
                claims[index] = claim
            new.append(index)
        try:
            processes = store_starts([checked[index] for index in new], user)
        except StartVetoed as vetoed:
            raise for_run(new[vetoed.index], vetoed.error) from None
        for index, process in zip(new, processes, strict=True):
            answers[index] = (process, False)
            claim = claims.get(index)
            if claim is None:
                continue
            if process.status == ProcessStatus.CANCELLED:
                claim.delete()
            else:
                claim.process = process
        IdempotencyKey.objects.bulk_update(
            [claim for claim in claims.values() if claim.process_id], ["process"]
        )
    return [answer for answer in answers if answer is not None]


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


# Rows deleted per batch by delete_in_batches.
DELETE_BATCH = 5000


def delete_in_batches(queryset: QuerySet) -> int:
    """Delete `queryset`'s rows (with what cascades from them: the count includes those) a
    batch at a time: each delete holds its locks briefly, and stays well under the 65,535
    parameters a statement may carry (orchestrator.postgresql; Django combines a cascade's
    SET NULL updates into one statement, so the backend's own batching does not keep a
    70,000-row delete under it)."""
    ordered = queryset.order_by()
    deleted = 0
    while keys := list(ordered.values_list("pk", flat=True)[:DELETE_BATCH]):
        deleted += queryset.model._default_manager.filter(pk__in=keys).delete()[0]
    return deleted


def clean_up_task_runs(*, older_than_days: int | None = None) -> int:
    """Delete completed task runs older than the retention period (and their steps)."""
    days = settings.ORCHESTRATOR_TASK_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - datetime.timedelta(days=days)
    return delete_in_batches(Process.objects.filter(
        is_task=True, status=ProcessStatus.COMPLETED, finished_at__lt=cutoff
    ))


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
