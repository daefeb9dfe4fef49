"""A small cloud-ish product for the blueprint tests (registered in tests.settings): `create_res`
makes a "Res" subscription after an optional delay, records its run once (WorkerPing) and
its running interval in the state; `terminate_res` ends one; `task_echo` is a task template."""

from __future__ import annotations

import time

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.forms import SecretField
from orchestrator.models import WorkerPing
from orchestrator.workflow import State, StepList, begin, done, init, step, workflow
from orchestrator.workflows.utils import create_workflow, terminate_workflow
from subscriptions.domain import SubscriptionModel
from tests import markers


class ResProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    name: str | None = None


class Res(ResProvisioning, lifecycles=["active", "disabled"]):
    name: str


class CreateResForm(forms.Form):
    customer_id = forms.CharField(max_length=100)
    name = forms.CharField(max_length=50)
    delay = forms.FloatField(min_value=0, max_value=30, required=False)
    fail = forms.BooleanField(required=False)
    upstream_id = forms.CharField(max_length=200, required=False)
    size = forms.IntegerField(required=False, min_value=0)
    items = forms.JSONField(required=False)
    password = SecretField(required=False, max_length=200)


@step("Provision res")
def provision_res(
    subscription_id: str, process_id: str, name: str, delay: float | None = None,
    fail: bool = False, upstream_id: str = "", password: str = "",
    parent_resource_ids: list | None = None, secrets: dict | None = None,
) -> State:
    started = time.time()
    if delay:
        time.sleep(delay)
    if fail and not markers.exists(f"blueprint-fix-{name}"):
        raise RuntimeError(f"provisioning {name} failed on purpose")
    WorkerPing.objects.create(marker=f"res:{name}:{process_id}")
    res = ResProvisioning.from_subscription(subscription_id)
    res.name, res.description = name, f"Res {name}"
    res.depends_on = list(parent_resource_ids or [])
    return {
        "subscription": res,
        "res_id": f"res-{name}",
        "subnets": [f"{name}-a", f"{name}-b"],
        "received_upstream": upstream_id,
        "received_password_length": len(password),
        "received_secret_names": sorted(secrets or {}),
        "ran_from": started,
        "ran_to": time.time(),
    }


@create_workflow("Create a res", initial_input_form=CreateResForm)
def create_res() -> StepList:
    return begin >> provision_res


@step("Remove res")
def remove_res(subscription_id: str, process_id: str) -> State:
    WorkerPing.objects.create(marker=f"terminate:{subscription_id}:{process_id}")
    return {"removed_at": time.time()}


@terminate_workflow("Terminate a res")
def terminate_res() -> StepList:
    return begin >> remove_res


class EchoForm(forms.Form):
    text = forms.CharField(max_length=100)


@step("Echo")
def echo(text: str) -> State:
    return {"echoed": text}


@workflow("Echo a text (a task template)", initial_input_form=EchoForm)
def task_echo() -> StepList:
    return init >> echo >> done


WORKFLOWS = [
    WorkflowDefinition(name="create_res", module=__name__, function="create_res"),
    WorkflowDefinition(name="terminate_res", module=__name__, function="terminate_res"),
    WorkflowDefinition(name="task_echo", module=__name__, function="task_echo", is_task=True),
]
