"""Workflows the catalogue tests run: run tags, concurrency limits, child runs, cron."""

from __future__ import annotations

import time

from django import forms

from orchestrator.catalogue import WorkflowDefinition, get_workflow
from orchestrator.context import current_run
from orchestrator.lock import registry as lock_registry
from orchestrator.models import WorkerPing
from orchestrator.workflow import State, StepList, done, init, step, workflow
from orchestrator.workflows.utils import add_branch_tag, add_tags
from tests import markers


@step("Look at the run context")
def look_at_context() -> State:
    run = current_run()
    return {"seen": [run.process_id, run.workflow_name, run.step_name, run.position]}


@step("Tag the run")
def tag_the_run(branch: str = "main", node: str = "n-1") -> State:
    add_tags(branches=[branch], nodes=[node])
    add_branch_tag("feature")
    return {}


@step("Fail after tagging")
def fail_after_tagging(fail: bool = False) -> State:
    add_tags(others=["doomed"])
    if fail:
        raise RuntimeError("failing after tagging, on purpose")
    return {}


class TaggedForm(forms.Form):
    fail = forms.BooleanField(required=False)


@workflow("Tags its own run", initial_input_form=TaggedForm)
def wf_tagged() -> StepList:
    return init >> look_at_context >> tag_the_run >> fail_after_tagging >> done


WORKFLOWS = [
    WorkflowDefinition(name="wf_tagged", module=__name__, function="wf_tagged", is_task=True),
]


class HoldForm(forms.Form):
    hold = forms.FloatField(min_value=0, max_value=60, required=False)


@step("Hold the slot")
def hold_the_slot(process_id: str, hold: float | None = None) -> State:
    """Runs for `hold` seconds, or less once the marker release-<id> exists."""
    deadline = time.monotonic() + (hold or 0)
    while time.monotonic() < deadline and not markers.exists(f"release-{process_id}"):
        time.sleep(0.05)
    WorkerPing.objects.create(marker=f"{process_id}:held")
    return {"held": hold or 0}


@workflow("Holds its slot for a while", initial_input_form=HoldForm)
def wf_hold() -> StepList:
    return init >> hold_the_slot >> done


def limited(name: str, limit: int, strategy: str) -> WorkflowDefinition:
    return WorkflowDefinition(
        name=name, module=__name__, function="wf_hold", is_task=True,
        concurrency_limit=limit, concurrency_limit_strategy=strategy, tags=("limited",),
    )


WORKFLOWS += [
    WorkflowDefinition(name="wf_hold", module=__name__, function="wf_hold", is_task=True),
    limited("wf_one_enqueue", 1, "enqueue"),
    limited("wf_two_enqueue", 2, "enqueue"),
    limited("wf_one_cancel_new", 1, "cancel_new"),
    WorkflowDefinition(name="wf_every_five_minutes", module=__name__, function="wf_hold",
                       type="internal", cron="*/5 * * * *", is_task=True),
    WorkflowDefinition(
        name="wf_widget_check", module=__name__, function="wf_hold", type="user",
        target="validate", product_types=("Widget",), tags=("widgets", "nightly"),
    ),
]


class LockedForm(forms.Form):
    lock_name = forms.CharField(max_length=100)
    hold = forms.FloatField(min_value=0, max_value=10, required=False)


@step("Inside the lock")
def inside_the_lock(lock_name: str, hold: float | None = None) -> State:
    """Holds the named lock for `hold` seconds and reports when it was inside (wall clock,
    the same on every worker of this machine)."""
    with lock_registry.get(name=lock_name, namespace="tests", timeout=60):
        entered = time.time()
        time.sleep(hold or 0)
        left = time.time()
    return {"entered": entered, "left": left}


@workflow("Works inside a named lock", initial_input_form=LockedForm)
def wf_named_lock() -> StepList:
    return init >> inside_the_lock >> done


WORKFLOWS.append(
    WorkflowDefinition(name="wf_named_lock", module=__name__, function="wf_named_lock",
                       is_task=True)
)


class ChildForm(forms.Form):
    value = forms.IntegerField()
    fail = forms.BooleanField(required=False)
    as_text = forms.BooleanField(required=False)
    hold = forms.FloatField(min_value=0, max_value=10, required=False)


@step("Double it")
def double_it(process_id: str, value: int, fail: bool = False, as_text: bool = False,
              hold: float | None = None) -> State:
    WorkerPing.objects.create(marker=f"child:{process_id}")  # counted: once per child run
    time.sleep(hold or 0)
    if fail and not markers.exists(f"fix-{value}"):
        raise RuntimeError(f"child {value} fails on purpose")
    return {"result": str(value * 2) if as_text else value * 2}


@workflow("A child run: doubles its value", initial_input_form=ChildForm)
def wf_child() -> StepList:
    return init >> double_it >> done


class ParentForm(forms.Form):
    values = forms.JSONField()
    as_text = forms.BooleanField(required=False)
    fail = forms.BooleanField(required=False)
    hold = forms.FloatField(min_value=0, max_value=10, required=False)


@step("Execute a child per value")
def execute_children(values: list, as_text: bool = False, fail: bool = False) -> State:
    client = get_workflow()
    results = [
        client.execute_workflow(
            workflow="wf_child", parameters={"value": value, "as_text": as_text, "fail": fail},
            expected_return=int,
        )
        for value in values
    ]
    return {"result": sum(results), "child_results": results}


@step("Run a batch of children")
def batch_children(values: list, fail: bool = False, hold: float | None = None) -> State:
    batch = get_workflow().create_batch()
    for value in values:
        batch.add(workflow=CHILD, parameters={"value": value, "fail": fail and value % 2 == 1,
                                              "hold": hold or 0})
    outcomes = [[result, str(error) if error else None] for result, error in batch]
    return {"result": outcomes}


@workflow("Executes its children one by one", initial_input_form=ParentForm)
def wf_parent_execute() -> StepList:
    return init >> execute_children >> done


@workflow("Runs its children as a batch", initial_input_form=ParentForm)
def wf_parent_batch() -> StepList:
    return init >> batch_children >> done


CHILD = WorkflowDefinition(name="wf_child", module=__name__, function="wf_child", is_task=True)
WORKFLOWS += [
    CHILD,
    WorkflowDefinition(name="wf_parent_execute", module=__name__, function="wf_parent_execute",
                       is_task=True),
    WorkflowDefinition(name="wf_parent_batch", module=__name__, function="wf_parent_batch",
                       is_task=True),
]
