"""Runs started from inside a flow run are child processes (DESIGN §4.4, §4.5): sub-flows
(a flow called in a flow) and the runs of `get_workflow()` (`orchestrator.client`).

A child is keyed by its call in the parent (`Process.call_key`, numbered per name in call
order), so a re-run of the parent finds the child its earlier turn started instead of
starting another: a completed child gives its result again, and a child that had failed
when the parent itself failed is retried along with the parent. Waiting for a child never
holds a worker idle: the parent runs the child right here when no worker has taken it, and
otherwise parks (`waiting`, `waiting_on_children`) until a child ends, which wakes it
(`wake_parent`); the parent then replays up to the call and finds the child's result.

A flow called outside any flow run (a script, a test, a shell) starts a process and runs
it in the calling thread.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from orchestrator.aio import in_event_loop
from orchestrator.client import (
    FINISHED_STATUSES,
    WorkflowRunFailed,
    finished,
    help_run,
    run_result,
)
from orchestrator.extensions import ProcessExtension
from orchestrator.flows.engine import Park, _call, current_turn
from orchestrator.flows.states import Completed, Failed, State
from orchestrator.injection import CoercionError, coerce
from orchestrator.models import Process, ProcessStatus

if TYPE_CHECKING:
    from orchestrator.flows.engine import FlowTurn

# A child in one of these failed, and is retried when its parent is.
FAILED_STATUSES = (ProcessStatus.FAILED, ProcessStatus.API_UNAVAILABLE,
                   ProcessStatus.INCONSISTENT_DATA)


class ChildRunFailed(WorkflowRunFailed):
    """A sub-flow run did not complete (a `WorkflowRunFailed`, as `execute_workflow`
    raises for any run)."""


def registered_name(flow: Any) -> str:
    """The catalogue name a flow is registered under."""
    from orchestrator import registry

    for definition in registry.all_definitions():
        if definition.module == flow.fn.__module__ and definition.function == flow.fn.__name__:
            return definition.name
    raise LookupError(
        f"flow {flow.name!r} is not in the workflow catalogue: list it in the WORKFLOWS of a "
        "module in ORCHESTRATOR_WORKFLOW_MODULES"
    )


def call_page(flow: Any, args: tuple, kwargs: dict[str, Any]) -> dict[str, Any]:
    """The arguments of a call as the flow's input page (only those given: defaults apply
    at run time)."""
    from orchestrator.flows.parameters import bind
    from orchestrator.injection import to_json

    bound = flow.parameters.signature.bind(*args, **kwargs) if args or kwargs else None
    given = dict(bound.arguments) if bound is not None else {}
    page = {}
    for name, value in given.items():
        secret = getattr(value, "get_secret_value", None)
        page[name] = secret() if secret is not None else to_json(value)
    bind(flow.parameters.signature, args, kwargs)  # refuses a bad call with a clear message
    return page


def outcome(process: Process, flow: Any = None) -> State:
    """A finished child's final state: its result (turned into the flow's return
    annotation where it has one), or ChildRunFailed."""
    if process.status != ProcessStatus.COMPLETED:
        return Failed(ChildRunFailed(process))
    value = run_result(process)
    annotation = getattr(flow, "return_annotation", None)
    if annotation is not None:
        try:
            value = coerce(value, annotation, "result")
        except CoercionError:
            pass
    return Completed(value)


# --- outside any flow run -------------------------------------------------------------------


def run_here(flow: Any, args: tuple, kwargs: dict[str, Any], return_state: bool) -> Any:
    """`my_flow(...)` outside a flow run: a process, run in this thread; its result."""
    if in_event_loop():
        from asgiref.sync import sync_to_async

        return sync_to_async(run_here)(flow, args, kwargs, return_state)
    from orchestrator.runner import run_process
    from orchestrator.services import start_process

    process = start_process(workflow_name=registered_name(flow),
                            input_pages=[call_page(flow, args, kwargs)])
    run_process(str(process.pk))
    deadline = time.monotonic() + settings.ORCHESTRATOR_LEASE_SECONDS * 10
    while True:  # another worker may have taken it first
        process = Process.objects.select_related("workflow").get(pk=process.pk)
        if process.status in FINISHED_STATUSES or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    state = outcome(process, flow)
    return state if return_state else state.result()


# --- inside a flow run ----------------------------------------------------------------------


def call_subflow(flow: Any, args: tuple, kwargs: dict[str, Any], return_state: bool) -> Any:
    """`my_flow(...)` inside a flow run: a child process, waited for without blocking."""
    if in_event_loop():
        from asgiref.sync import sync_to_async

        return sync_to_async(call_subflow)(flow, args, kwargs, return_state)
    from orchestrator.services import start_process

    turn = current_turn()
    if turn is None or _call.get() is not None:
        raise RuntimeError(
            f"call the flow {flow.name!r} from the flow function itself, not from inside a task"
        )
    page = call_page(flow, args, kwargs)
    name = registered_name(flow)
    child = find_or_start(turn, turn.child_key(flow.name), lambda key: start_process(
        workflow_name=name, input_pages=[page], parent=turn.process, call_key=key))
    state = await_child(turn, child, flow)
    return state if return_state else state.result()


def find_or_start(turn: FlowTurn, key: str, start: Callable[[str], Process]) -> Process:
    """The child of the call `key`: the one an earlier turn started (retried if it had
    failed by the time the parent last failed), or `start(key)` now."""
    from orchestrator.services import resume_process

    child = Process.objects.select_related("workflow").filter(
        parent_id=turn.pk, call_key=key).first()
    if child is None:
        return start(key)
    if child.status in FAILED_STATUSES and turn.failed_at is not None \
            and child.last_modified_at <= turn.failed_at:
        child = resume_process(process=child)
    return child


def await_child(turn: FlowTurn, child: Process, flow: Any = None) -> State:
    """The child's final state: run it here while no worker has taken it; park the parent
    while a worker runs it (or it waits for a retry, for input, ...)."""
    while True:
        ended = finished([child.pk])
        if ended:
            return outcome(ended[child.pk], flow)
        if not help_run(child.pk):
            park(turn, [child.pk], f"waiting for {child.workflow.name} run {child.pk}")


def park(turn: FlowTurn, child_ids: Iterable[Any], reason: str) -> None:
    """Stop this turn until one of `child_ids` ends (Park, which the turn handles with
    `park_for_children`)."""
    turn.awaited.update(child_ids)
    raise Park(reason, ProcessStatus.WAITING)


def park_for_children(turn: Any, reason: str) -> bool:
    """Give the run back until a child it waits for ends; False when one already has (the
    turn runs the flow again at once instead).

    The parent's row is updated before the children are read: a child ending at the same
    moment either is seen here, or its `wake_parent` waits for this transaction and then
    finds the parent parked.
    """
    now = timezone.now()
    backstop = now + datetime.timedelta(seconds=settings.ORCHESTRATOR_CHILD_POLL_SECONDS)
    with transaction.atomic():
        parked = Process.objects.filter(pk=turn.pk, lease_owner=turn.owner).update(
            status=ProcessStatus.WAITING, waiting_on_children=True, retry_at=backstop,
            lease_owner="", lease_expires_at=None, last_modified_at=now,
        )
        if not parked:
            return True
        if Process.objects.filter(pk__in=turn.awaited, status__in=FINISHED_STATUSES).exists():
            transaction.set_rollback(True)
            return False
    return True


def wake_parent(parent_id: Any) -> None:
    """A child of `parent_id` ended: if the parent is parked waiting for its children, run
    it again (it replays up to its call and finds the child's result). Every flow child's
    end asks, so the UPDATE is written as SQL once, not built by the ORM each time."""
    from orchestrator.services import enqueue_process

    quote = connection.ops.quote_name
    params = [
        ProcessStatus.RESUMED,
        Process._meta.get_field("last_modified_at").get_db_prep_save(timezone.now(), connection),
        Process._meta.pk.get_db_prep_value(parent_id, connection),
        ProcessStatus.WAITING,
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Process._meta.db_table)} SET status = %s, "  # noqa: S608
            f"waiting_on_children = FALSE, retry_at = NULL, last_modified_at = %s "
            f"WHERE id = %s AND status = %s AND waiting_on_children",
            params,
        )
        woken = cursor.rowcount
    if woken:
        enqueue_process(Process.objects.select_related("workflow").get(pk=parent_id))


class WakeParentFlows(ProcessExtension):
    """The engine's own use of `process_stopped`: a run that stops wakes the flow that
    waits for it, inside the transaction that records its end.

    A flow waits only for the children its function started (`find_or_start`), and each
    of those carries the key of its call (`FlowTurn.child_key`, never empty). A child
    without one (a blueprint step, a validation run) is no flow's to wait for: its end
    asks nothing, which spares every blueprint step an UPDATE."""

    def process_stopped(self, process: Process, status: str) -> None:
        if process.parent_id and process.call_key:
            wake_parent(process.parent_id)
