"""Reads of the engine's data that more than one caller needs."""

from __future__ import annotations

import datetime
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import Case, CharField, Count, Exists, OuterRef, QuerySet, Value, When
from django.utils import timezone
from guardian.shortcuts import get_objects_for_user

from orchestrator.models import (
    AuditEvent,
    EngineSettings,
    Process,
    ProcessLog,
    ProcessStatus,
    ProcessStep,
    WorkerHeartbeat,
    Workflow,
)
from orchestrator.permissions import require
from orchestrator.statediff import state_diff


def engine_is_paused() -> bool:
    """Asked at every start (and claim): a plain read of one row, not an ORM query built
    each time."""
    table = connection.ops.quote_name(EngineSettings._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT paused FROM {table} WHERE id = 1")  # noqa: S608 - a model's table
        row = cursor.fetchone()
    return bool(row and row[0])


def process_counts_by_status() -> dict[str, int]:
    """How many runs are in each status (statuses without a run are absent)."""
    rows = Process.objects.order_by().values_list("status").annotate(count=Count("id"))
    return dict(rows)


def runs_waiting_for_slot() -> int:
    """Queued runs waiting for a concurrency slot of their workflow (orchestrator.concurrency)."""
    return Process.objects.filter(
        status=ProcessStatus.QUEUED, slot_requested_at__isnull=False
    ).count()


def workflows_for_user(user) -> QuerySet[Workflow]:
    """Workflows the user may see: model-level view permission, or a per-object grant."""
    return get_objects_for_user(
        user, "orchestrator.view_workflow", klass=Workflow, accept_global_perms=True
    ).filter(removed_at__isnull=True)


def with_workflow_tag(workflows: QuerySet[Workflow], tag: str) -> QuerySet[Workflow]:
    """The workflows carrying `tag` (tags are a JSON list on the row: PostgreSQL matches
    it in SQL; SQLite has no JSON containment, so its small catalogue is matched here)."""
    if connection.vendor == "postgresql":
        return workflows.filter(tags__contains=[tag])
    ids = [pk for pk, tags in workflows.values_list("pk", "tags") if tag in (tags or [])]
    return workflows.filter(pk__in=ids)


def processes_for_user(user) -> QuerySet[Process]:
    """Processes the user may see; per-object grants widen a missing model permission."""
    return get_objects_for_user(
        user, "orchestrator.view_process", klass=Process, accept_global_perms=True
    ).select_related("workflow")


def with_parent_visibility(queryset: QuerySet[Process], user) -> QuerySet[Process]:
    """Annotate `parent_visible`: whether `user` may view each process's parent, so a child
    they may see never names a parent they may not (one subquery, no query per row)."""
    return queryset.annotate(
        parent_visible=Exists(processes_for_user(user).filter(pk=OuterRef("parent_id")))
    )


def audit_events_for_user(user) -> QuerySet[AuditEvent]:
    """The audit trail, for admins and holders of `orchestrator.view_auditevent` only (it
    names every user and client address): PermissionDenied for anyone else."""
    require(user, "orchestrator.view_auditevent")
    return AuditEvent.objects.select_related("actor").order_by("-at", "-id")


def input_state(process: Process) -> dict[str, Any]:
    """The state an input form is built from: the stored state and, in memory only, the
    run's secrets (none if the key they were encrypted with is gone)."""
    from cryptography.fernet import InvalidToken

    from orchestrator.crypto import decrypt_json

    try:
        secrets = decrypt_json(process.secrets)
    except (InvalidToken, ValueError):
        secrets = {}
    return {**process.state, **secrets}


def current_input_form(process: Process) -> Any:
    """The form spec of the input step a suspended process waits at (or None); raises
    StepsGone when a deployment removed the step."""
    from orchestrator.runner import align_position, workflow_steps
    from orchestrator.workflow import StepKind

    if process.status != "suspended":
        return None
    steps = workflow_steps(process)
    step = steps[align_position(process, steps)]
    return step.func if step.kind == StepKind.INPUT else None


def process_step_diffs(process: Process) -> list[dict[str, Any]]:
    """Each logged step with what it changed in the state compared with the one before, path
    by path (`subscription.size`, not the whole subscription: `orchestrator.statediff`).

    A flow's task runs do not change the state: their rows hold what they returned (or
    their error) and are left out of the comparison.
    """
    previous: dict[str, Any] = {}
    rows = []
    for step in ProcessStep.objects.filter(process=process).select_related("created_by"):
        state = step.state or {}
        if step.task_key:
            rows.append({"step": step, "changed": {}, "removed": [], "task": True})
            continue
        changed, removed = state_diff(previous, state)
        rows.append({"step": step, "changed": changed, "removed": removed})
        if step.status not in ("failed", "waiting"):
            previous = state
    return rows


# A worker that missed this many heartbeats in a row is lost (killed, hung, or cut off).
MISSED_HEARTBEATS = 3
WORKER_STATUSES = ("alive", "stopped", "lost")


def workers() -> QuerySet[WorkerHeartbeat]:
    """Every worker that reported itself, with `status`: `alive` (seen within
    MISSED_HEARTBEATS heartbeats), `stopped` (said so when it shut down) or `lost`."""
    seen_since = timezone.now() - datetime.timedelta(
        seconds=settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS * MISSED_HEARTBEATS
    )
    return WorkerHeartbeat.objects.annotate(
        status=Case(
            When(stopped_at__isnull=False, then=Value("stopped")),
            When(last_seen_at__gte=seen_since, then=Value("alive")),
            default=Value("lost"),
            output_field=CharField(),
        )
    ).order_by("name")


def process_log_lines(process: Process) -> QuerySet[ProcessLog]:
    """The run log of a process (orchestrator.runlog), oldest first."""
    return ProcessLog.objects.filter(process=process).order_by("id")


def process_log_tail(process: Process, count: int) -> tuple[list[ProcessLog], int]:
    """The last `count` lines of the run log, oldest first, and how many lines it has."""
    total = ProcessLog.objects.filter(process=process).count()
    tail = list(ProcessLog.objects.filter(process=process).order_by("-id")[:count])
    return tail[::-1], total
