"""The engine's demo tasks (`task_demo`, `task_demo_with_input`): a user module like any other,
listed in the default ORCHESTRATOR_WORKFLOW_MODULES so the embedded mode has something to run."""

from __future__ import annotations

import time

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.workflow import State, StepList, begin, done, init, inputstep, step, workflow


class DemoForm(forms.Form):
    message = forms.CharField(max_length=200, initial="hello")
    step_seconds = forms.FloatField(min_value=0, max_value=30, initial=0.5, required=False)


@step("Say hello")
def say_hello(message: str) -> State:
    return {"greeting": f"Hello: {message}"}


@step("Do some work")
def do_some_work(step_seconds: float | None = None) -> State:
    time.sleep(step_seconds or 0)
    return {"worked_seconds": step_seconds or 0}


@step("Summarise")
def summarise(greeting: str, worked_seconds: float) -> State:
    return {"summary": f"{greeting} after {worked_seconds}s of work"}


@workflow("A demo task of a few steps", initial_input_form=DemoForm)
def task_demo() -> StepList:
    return begin >> init >> say_hello >> do_some_work >> summarise >> done


class ApprovalForm(forms.Form):
    approved = forms.BooleanField(required=True, help_text="Tick to go on.")
    comment = forms.CharField(max_length=500, required=False)


@inputstep("Ask for approval", assignee="operator")
def ask_for_approval(message: str) -> type[forms.Form]:
    return ApprovalForm


@step("Record the approval")
def record_approval(approved: bool, comment: str = "") -> State:
    return {"approval": {"approved": approved, "comment": comment}}


@workflow("A demo task that waits for an operator's approval", initial_input_form=DemoForm)
def task_demo_with_input() -> StepList:
    return init >> say_hello >> ask_for_approval >> record_approval >> done


WORKFLOWS = [
    WorkflowDefinition(name=name, module=__name__, function=name, is_task=True)
    for name in ("task_demo", "task_demo_with_input")
]
