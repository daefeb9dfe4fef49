"""A product has at most one create, one terminate and one validate workflow, however the
link is made (service, code, reverse relation, admin); a second one is refused naming the
first, and nothing is linked."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from orchestrator.exceptions import Conflict
from orchestrator.models import Workflow
from subscriptions.models import Product
from subscriptions.services import link_product_workflows
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db

RULE = "at most one create, one terminate and one validate workflow"


def second(name: str, target: str) -> Workflow:
    """Another workflow row of the target (rows, not code, are what products link)."""
    return Workflow.objects.create(name=name, module="tests.x", function=name, target=target)


@pytest.mark.parametrize("target", ["create", "terminate", "validate"])
def test_the_service_refuses_a_second_workflow_of_a_target_naming_the_first(box_product, target):
    other = second(f"{target}_box_v2", target)
    before = set(box_product.workflows.values_list("name", flat=True))
    with pytest.raises(Conflict) as refused:
        link_product_workflows(product=box_product, workflows=[other])
    assert f"already has the {target} workflow {target}_box" in refused.value.message
    assert f"cannot also have {target}_box_v2" in refused.value.message and RULE in \
        refused.value.message
    assert set(box_product.workflows.values_list("name", flat=True)) == before


def test_modify_workflows_are_not_limited(box_product):
    link_product_workflows(product=box_product, workflows=[second("modify_box_v2", "modify")])
    assert box_product.workflows.filter(target="modify").count() == 3  # with modify_note


def test_every_other_path_is_guarded_too(box_product):
    other = second("create_box_v2", "create")
    fresh = Product.objects.create(name="Fresh", product_type=box_product.product_type)
    attempts = [
        ("already has the create workflow create_box", lambda: box_product.workflows.add(other)),
        # the reverse relation
        ("already has the create workflow create_box", lambda: other.products.add(box_product)),
        ("cannot have two create workflows", lambda: fresh.workflows.set(
            [Workflow.objects.get(name="create_box"), other]
        )),
    ]
    for message, attempt in attempts:
        with pytest.raises(ValidationError, match=message), transaction.atomic():
            attempt()
    assert not box_product.workflows.filter(pk=other.pk).exists()
    assert not fresh.workflows.exists()
    # Replacing the create workflow (set without the old one) is allowed.
    kept = list(box_product.workflows.exclude(name="create_box"))
    box_product.workflows.set([*kept, other])
    assert box_product.workflows.get(target="create") == other


def test_the_admin_form_refuses_it_on_the_field(client, box_product):
    admin = user_with_role("admin")
    admin.is_staff = True
    admin.save()
    client.force_login(admin)
    other = second("create_box_v2", "create")
    url = reverse("admin:subscriptions_product_change", args=[box_product.pk])
    data = {
        "name": "Box",
        "description": "",
        "product_type": box_product.product_type.pk,
        "status": "active",
        "tag": "BOX",
        "workflows": [*box_product.workflows.values_list("pk", flat=True), other.pk],
        "fixed_inputs-TOTAL_FORMS": "0",
        "fixed_inputs-INITIAL_FORMS": "0",
    }
    response = client.post(url, data)
    assert response.status_code == 200  # the form again, with the error
    assert "already has the create workflow create_box" in response.content.decode()
    assert not box_product.workflows.filter(pk=other.pk).exists()
    data["workflows"] = [pk for pk in data["workflows"] if pk != other.pk]
    data["description"] = "changed"
    assert client.post(url, data).status_code == 302


def test_migrate_workflows_refuses_a_product_types_link_that_breaks_the_rule(synced):
    """`product_types` on a definition links it to those products in migrate_workflows; a
    product that has a validate workflow already is refused (shown, not linked)."""
    from django.core.management import call_command

    from orchestrator.services import sync_workflows, workflow_changes
    from subscriptions.models import ProductType

    widget = ProductType.objects.create(name="Widget")
    small = Product.objects.create(name="Small widget", product_type=widget)
    large = Product.objects.create(name="Large widget", product_type=widget)
    small.workflows.add(Workflow.objects.get(name="validate_box"))
    changes = workflow_changes()
    assert ("products", "wf_widget_check", {"link": ["Large widget"]}) in changes
    refused = [c for c in changes if c[0] == "refused"]
    assert refused == [("refused", "wf_widget_check", {
        "product": "Small widget",
        "reason": "Product Small widget already has the validate workflow validate_box: it "
                  "cannot also have wf_widget_check (a product has " + RULE + ")",
    })]
    sync_workflows()
    assert large.workflows.filter(name="wf_widget_check").exists()
    assert list(small.workflows.filter(target="validate")) == [
        Workflow.objects.get(name="validate_box")
    ]
    with pytest.raises(Exception, match="not applied"):  # still said, until an admin decides
        call_command("migrate_workflows", "--check")
