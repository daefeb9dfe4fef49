"""The catalogue (DESIGN §4.4): definitions, product links from `product_types`, filters by
type, target and tag in the API and on the page, and what a concurrency limit shows."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from orchestrator.catalogue import ConcurrencyLimitStrategy, WorkflowDefinition, WorkflowType
from orchestrator.models import Process, Workflow
from orchestrator.runner import claim, run_process
from orchestrator.services import sync_workflows, workflow_changes
from tests.helpers import start

pytestmark = pytest.mark.django_db


def names(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["name"] for row in response.json()["results"]}


# --- definitions --------------------------------------------------------------------------


def test_a_definition_is_normalised_and_its_row_carries_every_field():
    definition = WorkflowDefinition(
        name="x", module="tests.catalogue_workflows", function="wf_hold", type="user",
        product_types=["Widget"], tags=["a"], concurrency_limit=2,
        concurrency_limit_strategy="cancel_new",
    )
    assert definition.type is WorkflowType.USER and definition.product_types == ("Widget",)
    assert definition.concurrency_limit_strategy is ConcurrencyLimitStrategy.CANCEL_NEW
    row = definition.catalogue_row()
    assert row["product_types"] == ["Widget"] and row["tags"] == ["a"]
    assert row["concurrency_limit"] == 2 and row["concurrency_limit_strategy"] == "cancel_new"
    assert row["description"] == "Holds its slot for a while" and row["type"] == "user"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency_limit": 0}, "concurrency_limit must be a whole number of at least 1"),
        ({"concurrency_limit": "2"}, "concurrency_limit must be a whole number"),
        ({"concurrency_limit": True}, "concurrency_limit must be a whole number"),
        ({"concurrency_limit_strategy": "drop"}, "concurrency_limit_strategy must be one of"),
        ({"type": "urgent"}, "type must be one of core, user, internal"),
        ({"target": "destroy"}, "target must be one of"),
        ({"product_types": "Widget"}, "product_types must be a list or tuple"),
        ({"product_types": [""]}, "product_types must hold product type names"),
        ({"tags": "nightly"}, "tags must be a list or tuple"),
        ({"cron": "every day"}, "cron must have 5 fields"),
    ],
)
def test_a_malformed_definition_is_refused_naming_the_field(options, message):
    with pytest.raises(ValueError, match=message):
        WorkflowDefinition(name="bad", module="m", function="f", **options)


@pytest.mark.parametrize("name", ["", "   ", "x" * 256, None])
def test_a_definition_needs_a_sensible_name(name):
    with pytest.raises(ValueError, match="workflow name"):
        WorkflowDefinition(name=name, module="m", function="f")


# --- product_types ------------------------------------------------------------------------


def test_migrate_workflows_links_the_products_of_a_definitions_product_types(synced):
    from subscriptions.models import Product, ProductType

    widget = ProductType.objects.create(name="Widget")
    small = Product.objects.create(name="Small widget", product_type=widget)
    large = Product.objects.create(name="Large widget", product_type=widget)
    other = Product.objects.create(name="Gadget", product_type=ProductType.objects.create(
        name="Gadget"))
    large.workflows.add(Workflow.objects.get(name="wf_widget_check"))  # linked already

    changes = workflow_changes()
    assert ("products", "wf_widget_check", {"link": ["Small widget"]}) in changes
    with pytest.raises(Exception, match="not applied"):
        call_command("migrate_workflows", "--check")
    sync_workflows()
    assert workflow_changes() == []
    for product in (small, large):
        assert product.workflows.filter(name="wf_widget_check").exists()
    assert not other.workflows.filter(name="wf_widget_check").exists()


# --- filters: API -------------------------------------------------------------------------


def test_the_catalogue_api_filters_by_tag_type_and_target(synced, viewer, api):
    client = api(viewer)
    assert names(client.get("/api/workflows/?tag=limited")) == {
        "wf_one_enqueue", "wf_two_enqueue", "wf_one_cancel_new"
    }
    assert names(client.get("/api/workflows/?tag=nightly")) == {"wf_widget_check"}
    assert names(client.get("/api/workflows/?tag=nightly&type=core")) == set()
    assert "wf_widget_check" in names(client.get("/api/workflows/?type=user&target=validate"))
    assert names(client.get("/api/workflows/?tag=night")) == set()  # whole tags only
    row = client.get("/api/workflows/wf_one_cancel_new/").json()
    assert row["concurrency_limit"] == 1 and row["concurrency_limit_strategy"] == "cancel_new"
    assert client.get("/api/workflows/wf_widget_check/").json()["product_types"] == ["Widget"]


@pytest.mark.parametrize(
    "query", ["type=bogus", "target=%00", "tag=" + "x" * 300]
)
def test_bad_catalogue_filters_are_a_400_naming_the_filter(synced, viewer, api, query):
    response = api(viewer).get(f"/api/workflows/?{query}")
    assert response.status_code == 400
    assert query.split("=")[0] in response.json()


@pytest.mark.parametrize("tag", ["\x00", "a\x00b", "'; DROP TABLE x; --", "<script>", "ü" * 10])
def test_odd_tags_simply_match_nothing(synced, viewer, api, tag):
    response = api(viewer).get("/api/workflows/", {"tag": tag})
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        assert response.json()["results"] == []


def test_runs_are_filtered_by_tag_in_the_api(synced, operator, api):
    tagged = start("wf_hold", {"hold": 0}, tags=["branch:main"])
    start("wf_hold", {"hold": 0}, tags=["branch:other"])
    body = api(operator).get("/api/processes/?tag=branch:main").json()
    assert [row["id"] for row in body["results"]] == [str(tagged.pk)]
    assert body["results"][0]["run_name"] == f"wf_hold {str(tagged.pk)[:8]}"


# --- filters: page ------------------------------------------------------------------------


def test_the_catalogue_page_filters_by_tag_type_and_target(client, viewer):
    client.force_login(viewer)
    page = client.get("/workflows/?tag=limited").content.decode()
    assert "wf_one_cancel_new" in page and "wf_hold<" not in page and "wf_input" not in page
    assert "1 at a time" in page and "more are cancelled" in page and "more wait" in page
    page = client.get("/workflows/?type=user&target=validate").content.decode()
    assert "wf_widget_check" in page and "for Widget" in page and "wf_one_enqueue" not in page
    page = client.get("/workflows/?tag=no-such-tag").content.decode()
    assert "No workflow matches these filters." in page


def test_bad_catalogue_page_filters_show_an_error_not_a_500(client, viewer):
    client.force_login(viewer)
    response = client.get("/workflows/?type=bogus&tag=" + "x" * 300)
    assert response.status_code == 400
    page = response.content.decode()
    assert "Select a valid choice" in page and "Nothing is listed" in page
    assert "wf_hold" not in page


# --- concurrency limits in the API and on the pages --------------------------------------


def test_the_api_answers_409_saying_why_a_cancel_new_run_was_cancelled(synced, operator, api):
    first = start("wf_one_cancel_new", {"hold": 0})
    assert claim(str(first.pk), "worker-elsewhere")
    response = api(operator).post(
        "/api/processes/", {"workflow": "wf_one_cancel_new", "input": [{"hold": 0}]},
        format="json",
    )
    assert response.status_code == 409
    body = response.json()
    assert "runs at most 1 at a time" in body["detail"] and "cancel_new" in body["detail"]
    cancelled = Process.objects.get(pk=body["process"])
    assert cancelled.status == "cancelled" and cancelled.failed_reason == body["detail"]
    assert cancelled.created_by == operator
    detail = api(operator).get(f"/api/processes/{cancelled.pk}/").json()
    assert detail["status"] == "cancelled" and detail["failed_reason"] == body["detail"]


def test_a_cancelled_start_with_an_idempotency_key_keeps_the_run_not_the_key(
    synced, operator, api
):
    first = start("wf_one_cancel_new", {"hold": 0})
    assert claim(str(first.pk), "worker-elsewhere")
    client = api(operator)
    payload = {"workflow": "wf_one_cancel_new", "input": [{"hold": 0}]}
    refused = client.post("/api/processes/", payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert refused.status_code == 409
    assert Process.objects.get(pk=refused.json()["process"]).status == "cancelled"
    Process.objects.filter(pk=first.pk).update(status="completed", lease_owner="")
    again = client.post("/api/processes/", payload, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201  # the key was not spent on the refused start
    assert Process.objects.get(pk=again.json()["id"]).status == "created"


def test_the_start_page_of_a_full_cancel_new_workflow_says_why(client, operator):
    first = start("wf_one_cancel_new", {"hold": 0})
    assert claim(str(first.pk), "worker-elsewhere")
    client.force_login(operator)
    response = client.post("/workflows/wf_one_cancel_new/start/", {"hold": "0"}, follow=True)
    assert response.status_code == 200
    page = response.content.decode()
    cancelled = Process.objects.filter(status="cancelled").get()
    assert response.redirect_chain[-1][0] == f"/processes/{cancelled.pk}/"
    assert "runs at most 1 at a time" in page and "badge-cancelled" in page


def test_a_run_waiting_for_a_slot_says_so_on_the_pages_and_in_the_api(client, operator, api):
    first = start("wf_one_enqueue", {"hold": 0})
    assert claim(str(first.pk), "worker-elsewhere")
    second = start("wf_one_enqueue", {"hold": 0})
    third = start("wf_one_enqueue", {"hold": 0})
    run_process(str(second.pk))
    run_process(str(third.pk))
    client.force_login(operator)
    page = client.get(f"/processes/{third.pk}/").content.decode()
    assert "Waiting for a concurrency slot" in page and "1 run ahead of it" in page
    assert "at most 1 at a time" in page
    assert "it is next" in client.get(f"/processes/{second.pk}/fragment/").content.decode()
    listing = client.get("/processes/?workflow=wf_one_enqueue").content.decode()
    assert listing.count("waiting for a slot") == 2
    detail = api(operator).get(f"/api/processes/{third.pk}/").json()
    assert detail["status"] == "queued" and detail["runs_ahead"] == 1
    assert detail["slot_requested_at"] is not None
    assert api(operator).get(f"/api/processes/{first.pk}/").json()["runs_ahead"] is None
