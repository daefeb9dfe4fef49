"""Starting runs from code, as Infrahub's workflow service does (`get_workflow()`):

    client = get_workflow()
    run_id = client.submit_workflow(workflow="sync_branch", parameters={"branch": "main"})
    result = client.execute_workflow(workflow=CHECK_NODE, parameters={...}, expected_return=bool)
    batch = client.create_batch()
    for node in nodes:
        batch.add(workflow="check_node", parameters={"node": node})
    for result, error in batch:        # in the order added; `async for` in async code
        ...

Each is also awaitable from async code (`await client.submit_workflow(...)`, or
`asubmit_workflow` / `aexecute_workflow`), without blocking the event loop: the database
work goes through `sync_to_async`, so from an async step it runs on the step's thread as
from a sync step.

Called from a running step (or a flow's task run), the runs it starts are its children
(`Process.parent`), and each call is numbered within the step (`orchestrator.context`): when
the step runs again (after a failure or a dead worker) the same call finds the child its
earlier attempt started instead of starting another, returns a completed child's result,
and retries a failed one.

Waiting never needs a free worker: while a run it waits for has not been taken by a worker,
the waiting thread runs it itself (the run's lease makes sure only one does), so a worker
whose every thread waits for its children still finishes them. The waiting thread's step
transaction stays open meanwhile: a child must not need rows the step has locked.

Called from a flow function itself, the runs are children of the flow run keyed by the
call, like sub-flows (`orchestrator.flows.children`): a replay of the flow finds them again,
and instead of polling, the flow run parks while workers run them and wakes when one ends.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
import types
import typing
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection, connections
from django.db.models import Q
from django.utils import timezone

from orchestrator.aio import in_event_loop
from orchestrator.context import current_run
from orchestrator.exceptions import OrchestratorError
from orchestrator.extensions import STOPPED_STATUSES
from orchestrator.models import (
    RETRYABLE_STATUSES,
    RUNNABLE_STATUSES,
    Process,
    ProcessStatus,
)

# Waiting polls the database, first often, then every second at most.
FIRST_POLL_SECONDS, LAST_POLL_SECONDS = 0.05, 1.0
# A run waited for is done when it reaches one of these (the others go on by themselves or
# wait for someone: input, a callback, a retry's backoff).
FINISHED_STATUSES = STOPPED_STATUSES
CONTEXT_KEYS = ("user", "tags", "parent", "run_name")


class WorkflowRunFailed(OrchestratorError):
    """A run that `execute_workflow` waited for ended without completing."""

    http_status = 409

    def __init__(self, process: Process) -> None:
        reason = f": {process.failed_reason}" if process.failed_reason else ""
        super().__init__(f"{process.workflow.name} run {process.pk} ended {process.status}"
                         f"{reason}", {"process": str(process.pk)})
        self.process = process


class WorkflowResultTypeError(TypeError):
    """The run's result is not of the type the caller said it expects."""


def run_result(process: Process) -> Any:
    """What a run returns: the `result` key of its final state (a flow's return value; a
    step-list workflow sets it from a step), else its whole final state."""
    state = process.state or {}
    return state["result"] if "result" in state else state


def matches(value: Any, expected: Any) -> bool:
    """isinstance() for what a caller may write as `expected_return`: a class, a generic
    alias (`list[int]`: checks the list), a union (`int | None`), None or Any."""
    if expected is Any:
        return True
    if expected is None or expected is type(None):
        return value is None
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, option) for option in typing.get_args(expected))
    return isinstance(value, origin or expected)


def check_result(result: Any, expected_return: Any, process: Process) -> Any:
    if expected_return is not None and not matches(result, expected_return):
        raise WorkflowResultTypeError(
            f"{process.workflow.name} run {process.pk} returned {type(result).__name__} "
            f"({result!r:.80}), expected {getattr(expected_return, '__name__', expected_return)}"
        )
    return result


def outside_transaction(func: typing.Callable[[], Any]) -> Any:
    """Run `func` where its writes commit on their own: here, or in a thread of its own
    (with this run context) while this thread is inside a transaction (a step). SQLite has
    one writer, which the step's transaction holds: there `func` runs inside it."""
    if not connection.in_atomic_block or connection.vendor == "sqlite":
        return func()
    outcome: dict[str, Any] = {}
    context = contextvars.copy_context()

    def target() -> None:
        try:
            outcome["value"] = context.run(func)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="orchestrator-child-run")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def flow_turn() -> Any:
    """The flow run whose function itself runs this code (orchestrator.flows), or None."""
    from orchestrator.flows.engine import flow_turn

    return flow_turn()


def next_call_key(workflow: str) -> str:
    """The key of a run asked for now, in the order of the caller's calls (so the same on
    every attempt of the step, task or flow): `""` outside any run."""
    turn = flow_turn()
    if turn is not None:
        return turn.child_key(workflow)
    run = current_run()
    return run.next_call_key() if run is not None else ""


@dataclass
class Submission:
    """One run asked for: what to start and, once started, its process id. Its call key is
    taken when it is asked for (a batch's items in the order added)."""

    workflow: str
    parameters: Any = None
    context: dict[str, Any] = field(default_factory=dict)
    expected_return: Any = None
    process_id: Any = None
    outcome: tuple[Any, BaseException | None] | None = None  # (result, error) once known
    call_key: str = field(init=False)

    def __post_init__(self) -> None:
        self.call_key = next_call_key(self.workflow)


def workflow_name(workflow: Any) -> str:
    name = getattr(workflow, "name", workflow)
    if not isinstance(name, str) or not name:
        raise TypeError(f"workflow must be a name or a WorkflowDefinition, not {workflow!r}")
    return name


def input_pages(parameters: Any) -> list[Any]:
    """A run's parameters are its first input page; a list gives every page."""
    if parameters is None:
        return [{}]
    if isinstance(parameters, dict):
        return [parameters]
    if isinstance(parameters, list):
        return parameters
    raise TypeError(f"parameters must be a dict (or a list of pages), not "
                    f"{type(parameters).__name__}")


def start_child(submission: Submission) -> Process:
    """Start the run, or find the one an earlier attempt of the calling step (or turn of
    the calling flow) started."""
    from orchestrator import extensions, services

    context = dict(submission.context or {})
    unknown = set(context) - set(CONTEXT_KEYS) - set(extensions.start_target_names())
    if unknown:
        raise TypeError(f"unknown context key(s): {', '.join(sorted(unknown))}")
    parent, call_key = context.pop("parent", None), submission.call_key

    def start(key: str) -> Process:
        return services.start_process(
            workflow_name=submission.workflow,
            input_pages=input_pages(submission.parameters),
            user=context.pop("user", None),
            tags=context.pop("tags", ()),
            run_name=context.pop("run_name", ""),
            parent=parent,
            call_key=key,
            **context,
        )

    turn = flow_turn()
    if turn is not None and parent is None:
        from orchestrator.flows.children import find_or_start

        parent = turn.process
        return find_or_start(turn, call_key, start)
    run = current_run()
    if run is not None:
        parent = parent or run.process_id
        earlier = Process.objects.filter(parent_id=parent, call_key=call_key).first()
        if earlier is not None:
            if earlier.status in RETRYABLE_STATUSES:  # retrying the step retries its child
                services.resume_process(process=earlier)
            return earlier
    if parent is not None and not isinstance(parent, Process):
        parent = Process.objects.get(pk=parent)
    return start(call_key)


def unclaimed(process_id: Any) -> bool:
    """Whether no worker holds the run and it could run now (for the waiter to take it):
    stored and not picked up, or a retry whose backoff has passed."""
    now = timezone.now()
    ready = Q(status__in=RUNNABLE_STATUSES) | Q(status=ProcessStatus.WAITING, retry_at__lte=now)
    return (
        Process.objects.filter(ready, pk=process_id, slot_requested_at=None)
        .filter(Q(lease_owner="") | Q(lease_expires_at__lt=now))
        .exists()
    )


def help_run(process_id: Any) -> bool:
    """Run a waited-for run in this thread if no worker has taken it (never a worker's
    wait for itself: the lease decides who runs it); whether this thread ran it."""
    from orchestrator.runner import run_process

    return unclaimed(process_id) and bool(
        outside_transaction(lambda: run_process(str(process_id))))


def finished(process_ids: list[Any]) -> dict[Any, Process]:
    rows = Process.objects.filter(pk__in=process_ids, status__in=FINISHED_STATUSES)
    return {row.pk: row for row in rows.select_related("workflow")}


def outcome_of(process: Process, expected_return: Any) -> Any:
    if process.status != ProcessStatus.COMPLETED:
        raise WorkflowRunFailed(process)
    return check_result(run_result(process), expected_return, process)


def pauses(timeout: float | None) -> Iterator[float]:
    """How long to wait before each next look: often at first, then every second at
    most; past `timeout` seconds, TimeoutError."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = FIRST_POLL_SECONDS
    while deadline is None or time.monotonic() < deadline:
        yield pause
        pause = min(pause * 1.5, LAST_POLL_SECONDS)
    raise TimeoutError(f"the runs waited for did not finish within {timeout:g} s")


class WorkflowClient:
    """Infrahub-style entry points for starting runs from code (module docstring)."""

    def submit_workflow(self, workflow: Any, parameters: Any = None,
                        context: dict[str, Any] | None = None) -> Any:
        """Start a run and return its id without waiting (fire and forget). `workflow` is a
        name or a WorkflowDefinition; `parameters` its first input page; `context` may hold
        `user`, `tags`, `parent`, `run_name` and start targets (`subscription`, ...). A
        `cancel_new` limit raises RunCancelled. Awaitable from async code."""
        if in_event_loop():
            return self.asubmit_workflow(workflow, parameters, context)
        submission = Submission(workflow_name(workflow), parameters, context or {})
        return str(outside_transaction(lambda: start_child(submission)).pk)

    async def asubmit_workflow(self, workflow: Any, parameters: Any = None,
                               context: dict[str, Any] | None = None) -> str:
        return await sync_to_async(self.submit_workflow)(workflow, parameters, context)

    def execute_workflow(self, workflow: Any, parameters: Any = None,
                         context: dict[str, Any] | None = None, expected_return: Any = None,
                         timeout: float | None = None) -> Any:
        """Start a run, wait for it and return its result (the `result` key of its final
        state), checked against `expected_return` (a wrong type: WorkflowResultTypeError).
        A run that ends without completing raises WorkflowRunFailed; one still unfinished
        after `timeout` seconds, TimeoutError. Awaitable from async code."""
        if in_event_loop():
            return self.aexecute_workflow(workflow, parameters, context, expected_return,
                                          timeout)
        batch = self.create_batch()
        batch.add(workflow, parameters, context, expected_return)
        for result, error in batch.execute(timeout):
            if error is not None:
                raise error
            return result
        return None

    async def aexecute_workflow(self, workflow: Any, parameters: Any = None,
                                context: dict[str, Any] | None = None,
                                expected_return: Any = None,
                                timeout: float | None = None) -> Any:
        batch = self.create_batch()
        batch.add(workflow, parameters, context, expected_return)
        async for result, error in batch.aexecute(timeout):
            if error is not None:
                raise error
            return result
        return None

    def create_batch(self, max_concurrent: int | None = None) -> WorkflowBatch:
        return WorkflowBatch(max_concurrent)


class WorkflowBatch:
    """Runs started together and waited for together; iterate `(result, error)` pairs in
    the order they were added (`for`, or `async for` in async code). Each run goes to the
    workers as soon as the batch runs, so they run concurrently; the iterating thread runs
    one itself whenever none of the workers has taken it yet. With `max_concurrent`, at
    most that many are started and unfinished at once."""

    def __init__(self, max_concurrent: int | None = None) -> None:
        if max_concurrent is not None and (not isinstance(max_concurrent, int)
                                           or max_concurrent < 1):
            raise ValueError("max_concurrent must be a whole number of at least 1")
        self.max_concurrent = max_concurrent
        self.submissions: list[Submission] = []

    def add(self, workflow: Any, parameters: Any = None, context: dict[str, Any] | None = None,
            expected_return: Any = None) -> None:
        self.submissions.append(
            Submission(workflow_name(workflow), parameters, context or {}, expected_return)
        )

    @property
    def num_tasks(self) -> int:
        return len(self.submissions)

    def start_more(self) -> None:
        """Start what `max_concurrent` allows; a refused start is that item's error."""
        active = sum(1 for s in self.submissions if s.process_id is not None and not s.outcome)
        for submission in self.submissions:
            if submission.process_id is not None or submission.outcome is not None:
                continue
            if self.max_concurrent is not None and active >= self.max_concurrent:
                return
            try:
                submission.process_id = start_child(submission).pk
                active += 1
            except Exception as error:  # noqa: BLE001 - reported as this item's error
                submission.outcome = (None, error)

    def step(self) -> bool:
        """One round: start what may start, note the runs that finished, and run one that
        no worker has taken yet here; True while an item has no outcome.

        In a flow function, a round in which this thread ran nothing parks the flow run
        until one of the runs ends (orchestrator.flows.children), instead of polling."""
        if any(s.process_id is None and s.outcome is None for s in self.submissions):
            outside_transaction(self.start_more)
        pending = {s.process_id: s for s in self.submissions
                   if s.process_id is not None and s.outcome is None}
        ended = finished(list(pending))
        for process_id, process in ended.items():
            submission = pending.pop(process_id)
            try:
                submission.outcome = (outcome_of(process, submission.expected_return), None)
            except Exception as error:  # noqa: BLE001 - reported as this item's error
                submission.outcome = (None, error)
        ran = any(help_run(process_id) for process_id in pending)
        turn = flow_turn()
        if turn is not None and pending and not ran and not ended:
            from orchestrator.flows.children import park

            park(turn, pending, f"waiting for {len(pending)} run(s) of a batch")
        return any(s.outcome is None for s in self.submissions)

    def ready(self, given: int) -> Iterator[tuple[Any, BaseException | None]]:
        """The outcomes from item `given` on that are known, in order, up to the first not."""
        for submission in self.submissions[given:]:
            if submission.outcome is None:
                return
            yield submission.outcome

    def execute(self, timeout: float | None = None) -> Iterator[tuple[Any, BaseException | None]]:
        """The outcomes in order; past `timeout` seconds TimeoutError (not in a flow
        function: its rounds never sleep, it parks, and the flow's own timeout applies)."""
        given, in_flow = 0, flow_turn() is not None
        waits = pauses(None if in_flow else timeout)
        while True:
            unfinished = self.step()
            for outcome in self.ready(given):
                given += 1
                yield outcome
            if not unfinished:
                return
            if not in_flow:
                time.sleep(next(waits))

    def __iter__(self) -> Iterator[tuple[Any, BaseException | None]]:
        return self.execute()

    async def aexecute(self, timeout: float | None = None
                       ) -> AsyncIterator[tuple[Any, BaseException | None]]:
        given, in_flow = 0, flow_turn() is not None
        waits = pauses(None if in_flow else timeout)
        while True:
            unfinished = await sync_to_async(self.step)()
            for outcome in self.ready(given):
                given += 1
                yield outcome
            if not unfinished:
                return
            if not in_flow:
                await asyncio.sleep(next(waits))

    def __aiter__(self) -> AsyncIterator[tuple[Any, BaseException | None]]:
        return self.aexecute()
