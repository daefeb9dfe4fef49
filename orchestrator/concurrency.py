"""Concurrency limits of the catalogue (DESIGN §4.4): at most `concurrency_limit` runs of a
workflow hold a worker at once.

A slot is a live lease: a run holds one exactly while a worker holds its lease (running
its steps), so a run that waits for input, a callback or a retry holds none, and a run
whose worker died frees its slot when its lease expires, without anyone cleaning up
(Infrahub's `cancel_new` jobs stay blocked for good after a crash; these cannot).

Every decision about a limited workflow's slots takes its catalogue row's lock first
(`SELECT ... FOR UPDATE`; SQLite's immediate transactions serialise all writers anyway),
so concurrent starts and claims on any number of workers and machines cannot both take
the last slot.

- `enqueue`: a run that finds no free slot when a worker claims it goes back to `queued`
  with `slot_requested_at`; runs get slots in the order they were started (an older run
  that wants a slot goes first), and each run that gives its slot back starts the next
  (`start_waiting_runs`; the recovery sweep does the same for slots freed by expiry).
- `cancel_new`: a new run is stored `cancelled` at once, with the reason, when the
  workflow's runs that hold a slot or are about to take one (stored, not yet claimed)
  already fill the limit (`start_refusal`). A run resumed later never is: it waits.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from orchestrator import selectors
from orchestrator.models import (
    RUNNABLE_STATUSES,
    ConcurrencyStrategy,
    Process,
    ProcessStatus,
    Workflow,
)

# Runs accepted but not yet claimed by a worker: they are about to take a slot.
PENDING_STATUSES = (ProcessStatus.CREATED, ProcessStatus.QUEUED, ProcessStatus.RESUMED)


def live_lease(now: datetime.datetime) -> Q:
    return ~Q(lease_owner="") & Q(lease_expires_at__gte=now)


def unlimited_workflow() -> Exists:
    """True for a process whose workflow has no limit: the fast claim's extra condition."""
    limited = Workflow.objects.filter(pk=OuterRef("workflow_id"), concurrency_limit__isnull=False)
    return ~Exists(limited)


def lock_workflow(workflow_id: int) -> Workflow | None:
    """Lock a workflow's catalogue row for the rest of the transaction: slot decisions of
    one workflow happen one at a time."""
    return Workflow.objects.select_for_update().filter(pk=workflow_id).first()


def slot_holders(workflow_id: int, now: datetime.datetime) -> QuerySet[Process]:
    return Process.objects.filter(workflow_id=workflow_id).filter(live_lease(now))


def slot_wanters(workflow_id: int, now: datetime.datetime) -> QuerySet[Process]:
    """Runs of the workflow that want a slot, with `slot_key` (the order they get one in)."""
    return (
        Process.objects.filter(workflow_id=workflow_id, status__in=RUNNABLE_STATUSES)
        .exclude(live_lease(now))
        .annotate(slot_key=Coalesce("slot_requested_at", "started_at"))
    )


def start_refusal(workflow: Workflow, pending: int = 0) -> str:
    """Why a new run of a full `cancel_new` workflow is cancelled (empty: it may start).
    Call inside the transaction that stores the run: it locks the workflow's row.
    `pending`: runs of the workflow accepted earlier in the same transaction, not yet
    stored (a batch start)."""
    limit = workflow.concurrency_limit
    if limit is None or workflow.concurrency_limit_strategy != ConcurrencyStrategy.CANCEL_NEW:
        return ""
    lock_workflow(workflow.pk)
    now = timezone.now()
    busy = (
        Process.objects.filter(workflow=workflow)
        .filter(live_lease(now) | Q(lease_owner="", status__in=PENDING_STATUSES))
        .count()
    ) + pending
    if busy < limit:
        return ""
    runs = "1 run is" if busy == 1 else f"{busy} runs are"
    return (
        f"Cancelled: {workflow.name} runs at most {limit} at a time and {runs} already "
        "running or about to run (concurrency_limit_strategy cancel_new: a new run beyond "
        "the limit is cancelled)"
    )


def claim_slot(process_id: Any, values: dict[str, Any]) -> bool:
    """Claim a run of a limited workflow (`values`: what the claim writes) if a slot is
    free and no older run waits for one; else put it back to `queued` until one frees.
    False also when the process is not claimable or its workflow has no limit."""
    workflow_id = (
        Process.objects.filter(pk=process_id, workflow__concurrency_limit__isnull=False)
        .values_list("workflow_id", flat=True)
        .first()
    )
    if workflow_id is None:
        return False
    with transaction.atomic():
        workflow = lock_workflow(workflow_id)
        now = timezone.now()
        due_retry = Q(status=ProcessStatus.WAITING, retry_at__lte=now)
        process = (
            Process.objects.filter(pk=process_id)
            .filter(Q(status__in=RUNNABLE_STATUSES) | due_retry)
            .exclude(live_lease(now))
            .select_for_update()
            .first()
        )
        if process is None or workflow is None:
            return False
        key = process.slot_requested_at or process.started_at
        holders = slot_holders(workflow_id, now).count()
        free = (workflow.concurrency_limit or 0) - holders
        ahead = slot_wanters(workflow_id, now).exclude(pk=process.pk).filter(slot_key__lt=key)
        if free > 0 and free > ahead.count():
            Process.objects.filter(pk=process.pk).update(**values)
            return True
        Process.objects.filter(pk=process.pk).update(
            status=ProcessStatus.QUEUED, slot_requested_at=key, last_modified_at=now
        )
        return False


def start_waiting_runs(workflow_id: int) -> int:
    """Enqueue as many runs waiting for a slot of the workflow as there are free slots,
    oldest first; returns how many. Called when a run gives its slot back, and by the sweep."""
    from orchestrator.services import enqueue_process

    if selectors.engine_is_paused():
        return 0
    with transaction.atomic():
        workflow = lock_workflow(workflow_id)
        if workflow is None:
            return 0
        now = timezone.now()
        waiting = (
            slot_wanters(workflow_id, now)
            .filter(status=ProcessStatus.QUEUED, slot_requested_at__isnull=False)
            .select_related("workflow")
            .order_by("slot_key", "pk")
        )
        if workflow.concurrency_limit is not None:
            free = workflow.concurrency_limit - slot_holders(workflow_id, now).count()
            waiting = waiting[: max(free, 0)]
        runs = list(waiting)
        for process in runs:
            enqueue_process(process)
    return len(runs)


def workflows_with_waiting_runs() -> list[int]:
    return list(
        Process.objects.filter(status=ProcessStatus.QUEUED, slot_requested_at__isnull=False)
        .order_by()
        .values_list("workflow_id", flat=True)
        .distinct()
    )


def runs_ahead(process: Process) -> int | None:
    """How many runs get a slot before this one (None when it does not wait for a slot)."""
    if process.status != ProcessStatus.QUEUED or process.slot_requested_at is None:
        return None
    now = timezone.now()
    return (
        slot_wanters(process.workflow_id, now)
        .exclude(pk=process.pk)
        .filter(Q(slot_key__lt=process.slot_requested_at)
                | Q(slot_key=process.slot_requested_at, pk__lt=process.pk))
        .count()
    )


__all__ = [
    "claim_slot",
    "runs_ahead",
    "start_refusal",
    "start_waiting_runs",
    "unlimited_workflow",
    "workflows_with_waiting_runs",
]
