"""Running an execution, dependency-driven, on the engine's guarantees.

Nothing here loops or waits. An Execute stores a run process (`blueprint_execution`); its
one real step starts every step that is ready. Each step is a child process of that run,
running its template's workflow with the step's resolved variables as its first input
page. When a child stops, the blueprints extension is told inside the transaction that
records the child's final status (`orchestrator.extensions.process_stopped`), and starts
the steps that this completion made ready: a step starts as soon as every step it depends
on is done, not when its whole level is. Because the bookkeeping commits with the child's
final step, a worker killed at any instant leaves either both or neither, and the engine's
lease and sweep redo what did not commit: no step starts twice, none is forgotten.

Locks, always in this order, so no two transactions wait for each other: step rows in
ascending primary key (steps are stored in topological order, so an upstream step's key is
lower than its downstream steps'), then the execution row. A tear down walks the graph
the other way and locks in descending order; it never runs beside an execution.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from blueprints.models import (
    Blueprint,
    Execution,
    ExecutionStatus,
    ExecutionStep,
    StepStatus,
    TeardownStatus,
)
from blueprints.plan import Resolved, Wire, missing_required, resolve_variables
from blueprints.selectors import template_spec_from, wires_from_snapshot
from orchestrator import rows
from orchestrator import services as engine
from orchestrator.crypto import decrypt_json
from orchestrator.exceptions import OrchestratorError
from orchestrator.extensions import STOPPED_STATUSES
from orchestrator.models import RETRYABLE_STATUSES, Process, ProcessStatus, Workflow
from subscriptions.models import Subscription

logger = logging.getLogger(__name__)
MAX_ERROR = 2000


@dataclass(frozen=True)
class Fact:
    """What starting a step needs to know of another step of its execution."""

    status: str
    outputs: dict[str, Any]
    name: str
    resource_id: Any


Facts = dict[int, Fact]  # by template id


def facts_of(steps: list[ExecutionStep]) -> Facts:
    return {step.template_id: Fact(step.status, step.outputs,
                                   step.template_snapshot.get("name", str(step.template_id)),
                                   step.resource_id)
            for step in steps}


# What starting a step reads of the step itself (the rest of its row is left unread).
STEP_TO_START: rows.Part = (ExecutionStep, "s", (
    "id", "execution", "template", "template_snapshot", "upstream", "status",
    "source_code_version", "storage",
))
FACT_COLUMNS: rows.Part = (ExecutionStep, "s", (
    "template", "status", "outputs", "template_snapshot", "resource",
))


def upstream_facts(execution_id: Any, steps: list[ExecutionStep]) -> Facts:
    """Facts of the steps that `steps` wait for."""
    wanted = sorted({template_id for step in steps for template_id in step.upstream})
    if not wanted:
        return {}
    found = rows.select(
        (FACT_COLUMNS,),
        f"FROM {rows.table(ExecutionStep)} s WHERE s.execution_id = %s "
        f"AND s.template_id IN ({', '.join(['%s'] * len(wanted))})",
        [rows.param(ExecutionStep, "execution", execution_id), *wanted],
    )
    return facts_of([step for (step,) in found])


@functools.lru_cache(maxsize=64)
def execution_wires(execution_id: Any) -> tuple[Wire, ...]:
    """An execution's wiring, read once per worker: the snapshot taken when the execution
    was created never changes, and a big blueprint's is the largest thing a step start
    would otherwise read and parse again."""
    snapshot = Execution.objects.filter(pk=execution_id).values_list("wiring_snapshot", flat=True)
    return tuple(wires_from_snapshot(snapshot.get()))


@functools.lru_cache(maxsize=64)
def downstream_templates(execution_id: Any) -> dict[int, tuple[int, ...]]:
    """For each template of the execution's wiring, the templates wired from it (the steps
    that wait for it), from the same snapshot, worked out once per worker."""
    targets: dict[int, set[int]] = {}
    for wire in execution_wires(execution_id):
        if wire.target != wire.source:
            targets.setdefault(wire.source, set()).add(wire.target)
    return {source: tuple(sorted(found)) for source, found in targets.items()}


def runtime_variables(
    execution: Execution, step: ExecutionStep, facts: Facts
) -> dict[str, Resolved]:
    """The step's variables now, by the same resolution as the plan: an override always
    beats a wired output, which beats the blueprint default, then the template default."""
    key = str(step.template_id)
    overrides = {
        **execution.variable_overrides.get(key, {}),
        **decrypt_json(execution.secret_overrides).get(key, {}),
    }
    return resolve_variables(
        template_spec_from(step.template_snapshot, step.template_id),
        overrides=overrides,
        wires=execution_wires(execution.pk),
        outputs={template_id: fact.outputs if fact.status == StepStatus.DONE else None
                 for template_id, fact in facts.items()},
        blueprint_defaults=step.template_snapshot.get("blueprint_defaults", {}),
        names={template_id: fact.name for template_id, fact in facts.items()},
    )


def fail_step(step: ExecutionStep, message: str) -> None:
    step.status = StepStatus.ERROR
    step.error_message = message[:MAX_ERROR]
    step.completed_at = timezone.now()
    rows.update(step, ["status", "error_message", "completed_at"])


def start_step(execution: Execution, step: ExecutionStep, facts: Facts,
               parent: Process | None) -> bool:
    """Start the step's child process (the step row is locked by the caller); False when it
    could not start, with the step in error saying why."""
    spec = template_spec_from(step.template_snapshot, step.template_id)
    resolved = runtime_variables(execution, step, facts)
    missing = missing_required(spec, resolved)
    if missing:
        fail_step(step, f"required variable(s) without a value: {', '.join(missing)}")
        return False
    if str(step.template_id) not in execution.parent_overrides:  # the upstream resources
        parents = [facts[t].resource_id for t in step.upstream
                   if t in facts and facts[t].resource_id]
        if parents:
            step.parent_resources.set(parents)
    step.execution = execution
    targets: dict[str, Any] = {"execution_step": step}
    if step.template_snapshot.get("target") == "create":
        targets["product"] = step.template_snapshot.get("product")
    page = {name: value.value for name, value in resolved.items() if value.source}
    try:
        process = start_child(execution, step, spec.name, page, parent, targets)
    except OrchestratorError as error:
        fail_step(step, f"could not start {step.template_snapshot['workflow']}: {error.message}")
        return False
    if process.status in STOPPED_STATUSES:  # cancelled at once by a concurrency limit
        step.process = process
        rows.update(step, ["process"])
        fail_step(step, f"{step.template_snapshot['workflow']} {process.status}: "
                        f"{process.failed_reason or 'no reason given'}")
        return False
    step.status = StepStatus.IN_PROGRESS
    step.process = process
    step.error_message = ""
    step.started_at = timezone.now()
    step.completed_at = None
    step.resolved_variables = {name: value.as_dict() for name, value in resolved.items()}
    rows.update(step, ["status", "process", "error_message", "started_at", "completed_at",
                       "resolved_variables"])
    return True


def start_child(execution: Execution, step: ExecutionStep, name: str, page: dict[str, Any],
                parent: Process | None, targets: dict[str, Any]) -> Process:
    """The step's process, stored in the completion's transaction (a run its concurrency
    limit cancelled at once too: the caller sees its status), or the refusal raised with
    nothing stored.

    No savepoint of its own, as `start_process` takes: a refusal comes from the checks
    before the store or from an extension's `reserve`, and for a step's targets (the step,
    a create template's product) no extension writes before it refuses, so there is
    nothing to undo and the transaction goes on to record the step's error; any other
    error rolls the whole completion back, as it would with one."""
    return engine.start_in_transaction(engine.StartRequest.of(
        workflow_name=step.template_snapshot["workflow"], input_pages=[page], parent=parent,
        run_name=f"{execution.blueprint.name} · {name}", **targets,
    ))


def is_ready(step: ExecutionStep, facts: Facts) -> bool:
    return step.status == StepStatus.PENDING and all(
        template_id in facts and facts[template_id].status == StepStatus.DONE
        for template_id in step.upstream
    )


def start_ready_steps(execution_id: Any, run_id: Any) -> int:
    """The run's step: give steps left in error a fresh start, then start every ready step.
    Called inside the run's step transaction."""
    steps = list(
        ExecutionStep.objects.select_for_update().filter(execution_id=execution_id).order_by("pk")
    )
    execution = Execution.objects.select_related("blueprint").get(pk=execution_id)
    run = Process.objects.get(pk=run_id)
    if execution.status != ExecutionStatus.IN_PROGRESS or str(execution.run_id) != str(run.pk):
        return 0  # executed again since, or already finished: this run has nothing to do
    for step in steps:
        if step.status == StepStatus.ERROR:
            supersede(step)
    started = start_steps(execution, facts_of(steps),
                          [s for s in steps if s.status == StepStatus.PENDING], run)
    settle(execution.pk)
    return started


def supersede(step: ExecutionStep) -> None:
    """A step in error runs again with a new process; its failed one is aborted so nobody
    resumes it beside the new one (nothing it did is undone)."""
    if step.process_id is not None:
        process = Process.objects.filter(pk=step.process_id, status__in=RETRYABLE_STATUSES).first()
        if process is not None:
            engine.abort_process(process=process)
    step.status = StepStatus.PENDING
    step.error_message = ""
    step.save(update_fields=["status", "error_message"])


def start_steps(execution: Execution, facts: Facts, candidates: list[ExecutionStep],
                parent: Process | None) -> int:
    """Start the ready ones among `candidates` (locked); stop at the first that cannot start."""
    started = 0
    for step in candidates:
        if not is_ready(step, facts):
            continue
        if not start_step(execution, step, facts, parent):
            return started
        started += 1
    return started


def settle(execution_id: Any) -> None:
    """Last, under the execution's row lock: the execution is in error when a step is, done
    when every step is. Of two steps finishing at once, the second to lock sees both.

    While a step is still pending and none is in error, the execution cannot end yet: the
    lock is skipped, so steps finishing at the same time do not queue for it (a pending
    step only ever starts, and its own completion settles later)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT DISTINCT status FROM {rows.table(ExecutionStep)} "  # noqa: S608
            f"WHERE execution_id = %s AND status IN (%s, %s)",
            [rows.param(ExecutionStep, "execution", execution_id),
             StepStatus.PENDING, StepStatus.ERROR],
        )
        open_statuses = {status for (status,) in cursor.fetchall()}
    if open_statuses == {StepStatus.PENDING}:
        return
    [(execution,)] = rows.select(
        ((Execution, "e", ("id", "status")),),
        f"FROM {rows.table(Execution)} e WHERE e.id = %s",
        [rows.param(Execution, "id", execution_id)], lock_of="e",
    )
    if execution.status != ExecutionStatus.IN_PROGRESS:
        return
    unfinished = [step for (step,) in rows.select(
        ((ExecutionStep, "s", ("id", "status", "template_snapshot", "error_message")),),
        f"FROM {rows.table(ExecutionStep)} s WHERE s.execution_id = %s AND s.status <> %s "
        f"ORDER BY {rows.column('s', ExecutionStep, 'order')}",
        [rows.param(ExecutionStep, "execution", execution_id), StepStatus.DONE],
    )]
    errors = [step for step in unfinished if step.status == StepStatus.ERROR]
    execution.completed_at = timezone.now()
    if errors:
        name = errors[0].template_snapshot.get("name")
        execution.status = ExecutionStatus.ERROR
        execution.error_message = f"Step {name} failed: {errors[0].error_message}"[:MAX_ERROR]
        rows.update(execution, ["status", "error_message", "completed_at"])
    elif not unfinished:
        execution.status = ExecutionStatus.DONE
        rows.update(execution, ["status", "completed_at"])


def outputs_of(step: ExecutionStep, process: Process) -> tuple[dict[str, Any], list[str]]:
    """The listed keys of the finished process's state, and those it lacks."""
    names = [item["name"] if isinstance(item, dict) else str(item)
             for item in step.template_snapshot.get("outputs", [])]
    return ({name: process.state[name] for name in names if name in process.state},
            [name for name in names if name not in process.state])


def resource_of(step: ExecutionStep, process: Process) -> Subscription | None:
    """The subscription a create workflow made (linked to its process)."""
    if step.template_snapshot.get("target") != "create":
        return None
    subscription_id = process.state.get("subscription_id")
    return process.subscriptions.filter(pk=subscription_id).first() if subscription_id else None


def step_stopped(step: ExecutionStep, status: str) -> None:
    """A step's child process stopped (`step` locked, its process read in this transaction):
    record it, start what it made ready, settle."""
    process = step.process
    step.completed_at = timezone.now()
    step.error_message = ""
    written = ["status", "error_message", "completed_at"]
    if status == ProcessStatus.COMPLETED:
        outputs, missing = outputs_of(step, process)
        step.outputs = outputs
        step.resource = resource_of(step, process)
        written += ["outputs", "resource"]
        if missing:
            step.status = StepStatus.ERROR
            step.error_message = (f"{process.workflow.name} finished without the output(s): "
                                  f"{', '.join(missing)}")
        else:
            step.status = StepStatus.DONE
    else:
        step.status = StepStatus.ERROR
        reason = process.failed_reason or "no reason given"
        step.error_message = f"{process.workflow.name} {status}: {reason}"[:MAX_ERROR]
    rows.update(step, written)
    execution = step.execution
    downstream: list[ExecutionStep] = []
    if step.status == StepStatus.DONE and execution.status == ExecutionStatus.IN_PROGRESS:
        downstream = pending_downstream(execution.pk, step.template_id)
        if downstream:
            # The run is only the children's parent here: its key, not its whole row.
            start_steps(execution, upstream_facts(execution.pk, downstream), downstream,
                        Process(pk=execution.run_id) if execution.run_id else None)
    statuses = {s.status for s in downstream}
    if StepStatus.PENDING in statuses and StepStatus.ERROR not in statuses:
        return  # a step this transaction holds locked stays pending: nothing to settle yet
    settle(execution.pk)


def pending_downstream(execution_id: Any, template_id: int) -> list[ExecutionStep]:
    """The pending steps that wait for `template_id`, locked in key order. The wiring
    snapshot names them (a step waits for the templates wired into it), so they are found
    through the (execution, template) index: a completion reads its own few rows however
    many steps the execution has, not a scan of them all."""
    targets = downstream_templates(execution_id).get(template_id)
    if not targets:
        return []
    found = rows.select(
        (STEP_TO_START,),
        f"FROM {rows.table(ExecutionStep)} s WHERE s.execution_id = %s "  # noqa: S608
        f"AND s.template_id IN ({', '.join(['%s'] * len(targets))}) AND s.status = %s "
        f"ORDER BY s.id",
        [rows.param(ExecutionStep, "execution", execution_id), *targets, StepStatus.PENDING],
        lock_of="s",
    )
    return [step for (step,) in found if template_id in step.upstream]


# --- tear down ---------------------------------------------------------------------------


def terminate_workflow_of(subscription: Subscription) -> str | None:
    workflow = subscription.product.workflows.filter(target="terminate").order_by("name").first()
    return workflow.name if workflow else None


def torn_down(step: ExecutionStep) -> bool:
    """Nothing left to terminate: no resource, already terminated, or terminated by us."""
    if step.resource_id is None:
        return True
    if step.resource.status == "terminated":
        return True
    return bool(step.teardown_process and step.teardown_process.status == ProcessStatus.COMPLETED)


def start_ready_terminations(execution_id: Any, run_id: Any) -> int:
    """The tear-down run's step: terminate every resource nothing left depends on."""
    steps = list(
        ExecutionStep.objects.select_for_update(of=("self",)).filter(execution_id=execution_id)
        .select_related("resource__product", "teardown_process").order_by("-pk")
    )
    execution = Execution.objects.select_related("blueprint").get(pk=execution_id)
    if execution.teardown_status != TeardownStatus.IN_PROGRESS or str(
        execution.teardown_run_id
    ) != str(run_id):
        return 0
    started = terminate_ready(execution, steps, steps)
    settle_teardown(execution.pk)
    return started


def terminate_ready(execution: Execution, steps: list[ExecutionStep],
                    candidates: list[ExecutionStep]) -> int:
    """Start the terminate workflow of each candidate whose dependents are all torn down."""
    done = {step.template_id for step in steps if torn_down(step)}
    started = 0
    for step in candidates:
        if step.template_id in done or (
            step.teardown_process_id and step.teardown_process.status not in (
                ProcessStatus.FAILED, ProcessStatus.ABORTED, ProcessStatus.CANCELLED,
                ProcessStatus.API_UNAVAILABLE, ProcessStatus.INCONSISTENT_DATA)
        ):
            continue
        dependents = [s for s in steps if step.template_id in s.upstream]
        if any(s.template_id not in done for s in dependents):
            continue
        workflow = terminate_workflow_of(step.resource)
        try:
            with transaction.atomic():
                process = engine.start_process(
                    workflow_name=workflow or "", input_pages=[{}], parent=execution.teardown_run,
                    run_name=f"Tear down {execution.blueprint.name} · "
                             f"{step.template_snapshot.get('name')}",
                    subscription=step.resource_id,
                )
        except OrchestratorError as error:
            execution.teardown_error = (f"could not terminate {step.resource}: "
                                        f"{error.message}")[:MAX_ERROR]
            execution.save(update_fields=["teardown_error"])
            return started
        step.teardown_process = process
        step.save(update_fields=["teardown_process"])
        started += 1
    return started


def teardown_step_stopped(step: ExecutionStep, process: Process, status: str) -> None:
    """A resource's terminate process stopped (`step` locked): terminate what it freed."""
    execution = Execution.objects.select_related("blueprint", "teardown_run").get(
        pk=step.execution_id
    )
    if status != ProcessStatus.COMPLETED:
        execution.teardown_error = (f"terminating {step.template_snapshot.get('name')} ended "
                                    f"{status}: {process.failed_reason}")[:MAX_ERROR]
        execution.save(update_fields=["teardown_error"])
    elif not execution.teardown_error:
        upstream = list(
            ExecutionStep.objects.select_for_update(of=("self",))
            .filter(execution_id=execution.pk, template_id__in=step.upstream)
            .select_related("resource__product", "teardown_process").order_by("-pk")
        )
        if upstream:
            steps = list(ExecutionStep.objects.filter(execution_id=execution.pk)
                         .select_related("resource", "teardown_process"))
            fresh = {s.pk: s for s in upstream}
            terminate_ready(execution, [fresh.get(s.pk, s) for s in steps], upstream)
    settle_teardown(execution.pk)


def settle_teardown(execution_id: Any) -> None:
    execution = Execution.objects.select_for_update().get(pk=execution_id)
    if execution.teardown_status != TeardownStatus.IN_PROGRESS:
        return
    steps = list(ExecutionStep.objects.filter(execution_id=execution_id)
                 .select_related("resource", "teardown_process"))
    if execution.teardown_error:
        execution.teardown_status = TeardownStatus.ERROR
    elif all(torn_down(step) for step in steps):
        execution.teardown_status = TeardownStatus.DONE
    else:
        return
    execution.save(update_fields=["teardown_status"])


# What a step's completion reads, with the step it locks: the execution (not locked:
# `settle` locks it when the execution may end) and the step's process as this
# transaction sees it (its final state and reason, whatever the caller's copy holds).
STOPPED_STEP: tuple[rows.Part, ...] = (
    (ExecutionStep, "s", ("id", "execution", "template", "template_snapshot", "status",
                          "process", "teardown_process")),
    (Execution, "e", ("id", "blueprint", "status", "run", "variable_overrides",
                      "secret_overrides", "parent_overrides")),
    (Blueprint, "b", ("id", "name")),
    (Process, "p", ("id", "workflow", "state", "failed_reason")),
    (Workflow, "w", ("id", "name")),
)


def stopped_step(process: Process, by: str) -> ExecutionStep | None:
    """The step whose `by` (`process` or `teardown_process`) is `process`, locked, with its
    execution and process: one statement, found through that column's index alone (a
    process is at most one step's), so its plan holds however large the table grows and
    whatever the planner's statistics say."""
    found = rows.select(
        STOPPED_STEP,
        f"FROM {rows.table(ExecutionStep)} s "
        f"JOIN {rows.table(Execution)} e ON e.id = s.execution_id "
        f"JOIN {rows.table(Blueprint)} b ON b.id = e.blueprint_id "
        f"LEFT JOIN {rows.table(Process)} p ON p.id = s.process_id "
        f"LEFT JOIN {rows.table(Workflow)} w ON w.id = p.workflow_id "
        f"WHERE {rows.column('s', ExecutionStep, by)} = %s",
        [rows.param(ExecutionStep, by, process.pk)],
        lock_of="s",
    )
    if not found:
        return None
    [(step, execution, blueprint, step_process, workflow)] = found
    execution.blueprint = blueprint
    step.execution = execution
    if step_process is not None:
        step_process.workflow = workflow
        step.process = step_process
    return step


def process_stopped(process: Process, status: str) -> None:
    """The blueprints extension's hook: only child processes can be blueprint steps."""
    if process.parent_id is None:
        return
    step = stopped_step(process, "process") or stopped_step(process, "teardown_process")
    if step is None:
        return
    if step.process_id == process.pk and step.status == StepStatus.IN_PROGRESS:
        step_stopped(step, status)
    if step.teardown_process_id == process.pk:
        teardown_step_stopped(step, Process.objects.get(pk=process.pk), status)
