"""Built-in subscription workflows: `modify_note` (on every product) and the nightly
`task_validate_products`."""

from __future__ import annotations

from django import forms

from orchestrator.catalogue import WorkflowDefinition, WorkflowType
from orchestrator.targets import Target
from orchestrator.workflow import State, StepList, begin, done, init, step, workflow
from orchestrator.workflows.utils import modify_workflow


class NoteForm(forms.Form):
    note = forms.CharField(max_length=5000, required=False, widget=forms.Textarea)
    version = forms.IntegerField(
        required=False, widget=forms.HiddenInput,
        help_text="The subscription version this form was filled against.",
    )


@step("Store the note")
def store_note(subscription_id: str, note: str = "") -> State:
    from subscriptions.models import Subscription
    from subscriptions.services import update_subscription

    subscription = Subscription.objects.select_for_update().get(pk=subscription_id)
    old_note = subscription.note
    update_subscription(subscription, note=note)
    return {"old_note": old_note, "note": note}


@modify_workflow("Modify the note of a subscription", initial_input_form=NoteForm)
def modify_note() -> StepList:
    return begin >> store_note


@step("Start validations")
def start_validations(process_id: str) -> State:
    from orchestrator.exceptions import OrchestratorError
    from orchestrator.models import Process
    from orchestrator.services import start_process
    from subscriptions.models import Subscription

    parent = Process.objects.get(pk=process_id)
    started, refused = [], []
    active = Subscription.objects.filter(
        status="active", product__workflows__target=Target.VALIDATE
    ).select_related("product").distinct()
    for subscription in active:
        for validate in subscription.product.workflows.filter(target=Target.VALIDATE):
            try:
                child = start_process(
                    workflow_name=validate.name, subscription=subscription.pk, parent=parent
                )
                started.append(str(child.pk))
            except OrchestratorError as error:
                refused.append({"subscription": str(subscription.pk), "reason": error.message})
    return {"validations_started": len(started), "validations_refused": refused}


@workflow("Validate every active subscription of products that have a validate workflow")
def task_validate_products() -> StepList:
    return init >> start_validations >> done


WORKFLOWS = [
    WorkflowDefinition(name="modify_note", module=__name__, function="modify_note"),
    WorkflowDefinition(
        name="task_validate_products",
        module=__name__,
        function="task_validate_products",
        is_task=True,
        type=WorkflowType.INTERNAL,
        cron="0 2 * * *",
    ),
]
