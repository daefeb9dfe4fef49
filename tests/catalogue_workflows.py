"""Workflows the catalogue tests run: run tags, concurrency limits, child runs, cron."""

from __future__ import annotations

import os
import time

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.context import current_run
from orchestrator.models import WorkerPing
from orchestrator.workflow import State, StepList, done, init, step, workflow
from orchestrator.workflows.utils import add_branch_tag, add_tags


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
    """Runs for `hold` seconds, or less once /tmp/orchestrator-release-<id> exists."""
    deadline = time.monotonic() + (hold or 0)
    release = f"/tmp/orchestrator-release-{process_id}"
    while time.monotonic() < deadline and not os.path.exists(release):
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
    WorkflowDefinition(
        name="wf_widget_check", module=__name__, function="wf_hold", type="user",
        target="validate", product_types=("Widget",), tags=("widgets", "nightly"),
    ),
]
