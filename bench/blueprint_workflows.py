"""The blueprint benchmark's template workflow: a task that sleeps like a provider call."""

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.workflow import State, StepList, done, init, step, workflow


class SleepForm(forms.Form):
    name = forms.CharField(max_length=50)
    sleep = forms.FloatField(min_value=0, max_value=5)
    upstream_a = forms.CharField(max_length=50, required=False)
    upstream_b = forms.CharField(max_length=50, required=False)


@step("Provision (sleep)")
def provision(name: str, sleep: float) -> State:
    import time

    time.sleep(sleep)
    return {"out": name}


@workflow("Sleep like a provider call (blueprint benchmark)", initial_input_form=SleepForm)
def bench_sleep() -> StepList:
    return init >> provision >> done


WORKFLOWS = [
    WorkflowDefinition(name="bench_sleep", module=__name__, function="bench_sleep", is_task=True)
]
