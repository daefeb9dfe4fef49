"""Workflows the catalogue tests run: run tags, concurrency limits, child runs, cron."""

from __future__ import annotations

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.context import current_run
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
