"""Built-in tasks and demo workflows, always registered."""

from __future__ import annotations

import time

from django import forms

from orchestrator import services
from orchestrator.catalogue import WorkflowDefinition, WorkflowType
from orchestrator.workflow import State, StepList, begin, done, init, inputstep, step, workflow


@step("Resume waiting processes")
def resume_waiting() -> State:
    return {"resumed": services.resume_waiting_processes()}


@workflow("Retry the processes waiting for a retry whose time has come")
def task_resume_workflows() -> StepList:
    return init >> resume_waiting >> done


@step("Delete old task runs")
def delete_old_task_runs() -> State:
    return {"deleted": services.clean_up_task_runs()}


@workflow("Delete completed task runs older than the retention period")
def task_clean_up_tasks() -> StepList:
    return init >> delete_old_task_runs >> done


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


def _builtin(name: str, description: str = "", **options) -> WorkflowDefinition:
    return WorkflowDefinition(
        name=name,
        module=__name__,
        function=name,
        description=description,
        is_task=True,
        **options,
    )


WORKFLOWS = [
    _builtin("task_resume_workflows", type=WorkflowType.INTERNAL, cron="*/5 * * * *"),
    _builtin("task_clean_up_tasks", type=WorkflowType.INTERNAL, cron="30 3 * * *"),
    _builtin("task_demo"),
    _builtin("task_demo_with_input"),
]
