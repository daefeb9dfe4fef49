"""A small product's workflows for the subscription tests (registered in tests.settings)."""

from __future__ import annotations

from django import forms

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.workflow import State, StepList, begin, step
from orchestrator.workflows.utils import (
    create_workflow,
    modify_workflow,
    terminate_workflow,
    validate_workflow,
)
from subscriptions.domain import SubscriptionModel
from subscriptions.forms import SubscriptionChoiceField


class BoxProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    name: str | None = None
    size: int | None = None


class Box(BoxProvisioning, lifecycles=["active"]):
    name: str
    size: int


class CreateBoxForm(forms.Form):
    customer_id = forms.CharField(max_length=100)
    name = forms.CharField(max_length=50)
    size = forms.IntegerField(min_value=1, max_value=100)
    depends_on = SubscriptionChoiceField(required=False)


@step("Construct box")
def construct_box(subscription_id: str, name: str, size: int, depends_on: str = "") -> State:
    box = BoxProvisioning.from_subscription(subscription_id)
    box.name, box.size, box.description = name, size, f"Box {name}"
    box.depends_on = [depends_on] if depends_on else []
    return {"subscription": box}


@create_workflow("Create a box", initial_input_form=CreateBoxForm)
def create_box() -> StepList:
    return begin >> construct_box


class ModifyBoxForm(forms.Form):
    size = forms.IntegerField(min_value=1, max_value=100)
    fail = forms.BooleanField(required=False)


@step("Resize box")
def resize_box(subscription: Box, size: int, fail: bool = False) -> State:
    subscription.size = size
    if fail:
        raise RuntimeError("the device refused the new size")
    return {"subscription": subscription}


@modify_workflow("Resize a box", initial_input_form=ModifyBoxForm)
def modify_box() -> StepList:
    return begin >> resize_box


@step("Decommission box")
def decommission_box(subscription: Box) -> State:
    return {"decommissioned": subscription.name}


@terminate_workflow("Terminate a box")
def terminate_box() -> StepList:
    return begin >> decommission_box


@step("Check box")
def check_box(subscription: Box) -> State:
    assert subscription.size > 0, "box has no size"
    return {"box_ok": True}


@validate_workflow("Validate a box")
def validate_box() -> StepList:
    return begin >> check_box


class MoveBoxForm(forms.Form):
    product = forms.CharField(max_length=100, help_text="Id or name of the new product")


@step("Move box")
def move_box_step(subscription: Box, product: str) -> State:
    return {"subscription": Box.from_other_product(subscription, product)}


@modify_workflow("Move a box to another product of its type", initial_input_form=MoveBoxForm)
def move_box() -> StepList:
    return begin >> move_box_step


class CreateCrateForm(forms.Form):
    """A sloppy form: the customer is optional here, the description too long for the model."""

    customer_id = forms.CharField(max_length=100, required=False)
    description = forms.CharField(max_length=500, required=False)


@create_workflow("Create a crate", initial_input_form=CreateCrateForm)
def create_crate() -> StepList:
    return begin


WORKFLOWS = [
    WorkflowDefinition(name=name, module=__name__, function=name)
    for name in (
        "create_box", "modify_box", "terminate_box", "validate_box", "move_box", "create_crate"
    )
]
