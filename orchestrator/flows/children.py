"""Runs started from inside a flow run are child processes (DESIGN §4.4, §4.5).

A child is keyed by its call in the parent (`Process.call_key`), so a re-run of the parent
finds the child its earlier turn started instead of starting another. Waiting for a child
never holds a worker idle: the parent runs the child right here when it can, and otherwise
parks (`waiting`, `waiting_on_children`) until the child ends, which wakes it
(`wake_parent`); the parent then replays up to the call and gets the child's result.

A flow called outside any flow run (a script, a test, a shell) starts a process and runs
it in the calling thread.
"""

from __future__ import annotations

import datetime
import time
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator.extensions import STOPPED_STATUSES, ProcessExtension
from orchestrator.flows.engine import Park, _call, current_turn, in_event_loop
from orchestrator.flows.states import Completed, Failed, State
from orchestrator.injection import CoercionError, coerce
from orchestrator.models import TERMINAL_STATUSES, Process, ProcessStatus

# A child in one of these has ended as far as its parent is concerned.
ENDED_STATUSES = STOPPED_STATUSES


class ChildRunFailed(Exception):
    """A sub-flow or child workflow run did not complete."""

    def __init__(self, process: Process) -> None:
        reason = process.failed_reason.splitlines()[0] if process.failed_reason else ""
        super().__init__(
            f"{process.workflow.name} run {process.pk} is {process.status}"
            + (f": {reason}" if reason else "")
        )
        self.process = process


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


def process_result(process: Process) -> Any:
    """What a finished run gives back: a flow's return value, or a step list's state."""
    if "result" in process.state and process.steps.filter(name="Done", task_key="").exists():
        return process.state["result"]
    return process.state


def outcome(process: Process, flow: Any = None) -> State:
    if process.status == ProcessStatus.COMPLETED:
        value = process.state.get("result") if flow is not None else process_result(process)
        annotation = getattr(flow, "return_annotation", None) if flow is not None else None
        if annotation is not None:
            try:
                value = coerce(value, annotation, "result")
            except CoercionError:
                pass
        return Completed(value)
    return Failed(ChildRunFailed(process))


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
        if process.status in ENDED_STATUSES or time.monotonic() > deadline:
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
    page = call_page(flow, args, kwargs)
    child = start_child(registered_name(flow), page, name=flow.name)
    state = await_child(child, flow)
    return state if return_state else state.result()


def start_child(workflow_name: str, page: dict[str, Any], name: str | None = None,
                tags: Any = ()) -> Process:
    """The child run of this call (started now, or found again on a re-run)."""
    from orchestrator.services import start_process

    turn = current_turn()
    if turn is None:
        raise RuntimeError("start_child needs a running flow")
    if _call.get() is not None:
        raise RuntimeError(
            f"start {workflow_name} from the flow function itself, not from inside a task"
        )
    turn.check_can_start()
    key = turn.next_key(None, f"{name or workflow_name}")
    child = Process.objects.select_related("workflow").filter(
        parent_id=turn.pk, call_key=key
    ).first()
    if child is None:
        child = start_process(workflow_name=workflow_name, input_pages=[page],
                              parent=turn.process, call_key=key, tags=tags)
        turn.children_started.add(child.pk)
    return child


def await_child(child: Process, flow: Any = None) -> State:
    """Run the child here if nobody else is; its final state, or park until it ends."""
    from orchestrator.runner import run_process
    from orchestrator.services import resume_process

    turn = current_turn()
    child = Process.objects.select_related("workflow").get(pk=child.pk)
    if child.status in ENDED_STATUSES and child.status not in TERMINAL_STATUSES \
            and child.pk not in turn.children_started:
        # It failed in an earlier turn of the parent: retrying the parent retries it.
        child = resume_process(process=child)
        turn.children_started.add(child.pk)
    if child.status not in ENDED_STATUSES:
        run_process(str(child.pk))
        child = Process.objects.select_related("workflow").get(pk=child.pk)
    if child.status in ENDED_STATUSES:
        return outcome(child, flow)
    turn.awaited.add(child.pk)
    raise Park(f"waiting for {child.workflow.name} run {child.pk}", ProcessStatus.WAITING)


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
        if Process.objects.filter(pk__in=turn.awaited, status__in=ENDED_STATUSES).exists():
            transaction.set_rollback(True)
            return False
    return True


def wake_parent(parent_id: Any) -> None:
    """A child of `parent_id` ended: if the parent is parked waiting for its children, run
    it again (it replays up to its call and finds the child's result)."""
    from orchestrator.services import enqueue_process

    woken = Process.objects.filter(
        pk=parent_id, status=ProcessStatus.WAITING, waiting_on_children=True
    ).update(status=ProcessStatus.RESUMED, waiting_on_children=False, retry_at=None,
             last_modified_at=timezone.now())
    if woken:
        enqueue_process(Process.objects.select_related("workflow").get(pk=parent_id))


class WakeParentFlows(ProcessExtension):
    """The engine's own use of `process_stopped`: a run that stops wakes the flow that
    waits for it, inside the transaction that records its end."""

    def process_stopped(self, process: Process, status: str) -> None:
        if process.parent_id:
            wake_parent(process.parent_id)
