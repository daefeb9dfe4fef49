"""Choice fields among objects offer and accept only what the requesting user may view
(issue 7 item 1): in the page, in the JSON Schema `enum`, in 400 answers, and in what a
start or a resume accepts. A forbidden id is refused exactly like an unknown one; the
system (no user) keeps the full choice."""

from __future__ import annotations

import io
import uuid

import pytest
from guardian.shortcuts import assign_perm

from orchestrator import services
from orchestrator.forms import (
    VisibleModelChoiceField,
    form_json_schema,
    make_form,
    validate_pages,
)
from orchestrator.models import Process, Workflow
from subscriptions import demo
from subscriptions.models import Product, Subscription
from tests.factories import user_with_role
from tests.helpers import run
from tests.workflows import PickWorkflowForm

pytestmark = pytest.mark.django_db


# --- the engine's field, on the catalogue's own rows (no domain app) -----------------------


@pytest.fixture
def picker(synced):
    """No role; may view and start wf_pick, and view wf_counted: nothing else."""
    user = user_with_role(None)
    for name in ("wf_pick", "wf_counted"):
        assign_perm("orchestrator.view_workflow", user, Workflow.objects.get(name=name))
    assign_perm("orchestrator.start_workflow", user, Workflow.objects.get(name="wf_pick"))
    return user


def errors_of(response) -> dict:
    body = response.json()
    return {key: value for key, value in body.items() if key != "form"}


def test_start_form_offers_and_accepts_only_visible_objects(picker, api):
    client = api(picker)
    schema = client.get("/api/workflows/wf_pick/").json()["form"]
    assert schema["properties"]["target"]["enum"] == ["wf_counted", "wf_pick"]

    forbidden = client.post("/api/processes/", {"workflow": "wf_pick",
                                                "input": [{"target": "wf_secret"}]}, format="json")
    unknown = client.post("/api/processes/", {"workflow": "wf_pick",
                                              "input": [{"target": "no_such"}]}, format="json")
    assert forbidden.status_code == unknown.status_code == 400
    assert errors_of(forbidden) == errors_of(unknown)
    assert "wf_secret" not in forbidden.content.decode()
    assert forbidden.json()["form"]["properties"]["target"]["enum"] == ["wf_counted", "wf_pick"]
    assert not Process.objects.exists()

    started = client.post("/api/processes/", {"workflow": "wf_pick",
                                              "input": [{"target": "wf_counted"}]}, format="json")
    assert started.status_code == 201, started.content
    assert started.json()["state"]["target"] == "wf_counted"  # the key, JSON, in the state


def test_input_step_offers_and_accepts_only_visible_objects(picker, api, client):
    process = run(services.start_process(
        workflow_name="wf_pick", input_pages=[{"target": "wf_pick"}], user=picker
    ))
    assert process.status == "suspended"
    assign_perm("orchestrator.resume_process", picker, process)
    visible = sorted(str(pk) for pk in Workflow.objects.filter(name__in=["wf_pick", "wf_counted"])
                     .values_list("pk", flat=True))
    hidden = str(Workflow.objects.get(name="wf_secret").pk)
    detail = api(picker).get(f"/api/processes/{process.pk}/").json()
    assert sorted(detail["form"]["properties"]["others"]["items"]["enum"]) == visible

    resume = f"/api/processes/{process.pk}/resume/"
    forbidden = api(picker).post(resume, {"input": [{"others": [hidden]}]}, format="json")
    unknown = api(picker).post(resume, {"input": [{"others": ["999999"]}]}, format="json")
    assert forbidden.status_code == unknown.status_code == 400
    # Each message names the value the user sent, and nothing else: the same sentence.
    assert forbidden.json()["others"][0].replace(hidden, "X") == \
        unknown.json()["others"][0].replace("999999", "X")

    client.force_login(picker)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert 'name="others"' in page and "wf_secret" not in page
    ok = api(picker).post(resume, {"input": [{"others": visible}]}, format="json")
    assert ok.status_code == 200, ok.content
    assert sorted(str(pk) for pk in ok.json()["state"]["others"]) == visible


def test_the_system_keeps_the_full_choice_and_nobody_gets_none(synced):
    every = set(Workflow.objects.values_list("name", flat=True))
    system = make_form(PickWorkflowForm, None).fields["target"]
    assert {str(value) for value, _ in system.choices if value != ""} == every
    process = services.start_process(workflow_name="wf_pick", input_pages=[{"target": "wf_secret"}])
    assert process.state["target"] == "wf_secret"
    # A caller that forgot to say who fills the form in gets no object at all (fails closed).
    assert form_json_schema(PickWorkflowForm)["properties"]["target"]["enum"] == []
    with pytest.raises(Exception, match="Invalid input"):
        validate_pages(PickWorkflowForm, [{"target": "wf_pick"}], state={})


def test_the_visible_to_rule_is_pluggable(operator):
    class OnlyCounted(PickWorkflowForm):
        target = VisibleModelChoiceField(
            Workflow.objects.all(), to_field_name="name",
            visible_to=lambda user, queryset: queryset.filter(name="wf_counted"),
        )

    assert form_json_schema(OnlyCounted, user=operator)["properties"]["target"]["enum"] == [
        "wf_counted"
    ]
    assert validate_pages(OnlyCounted, [{"target": "wf_counted"}], {}, user=operator).complete
    assert len(make_form(OnlyCounted, None).fields["target"].queryset) > 1  # the system


# --- the demo catalogue: a user restricted to one customer ----------------------------------


@pytest.fixture
def acme(synced):
    """Two active nodes of two customers; a user who may see only acme's and start create_port."""
    demo.load(io.StringIO())
    nodes = Subscription.objects.filter(product__product_type__name="Node", status="active")
    mine, theirs = nodes.order_by("description")[:2]
    Subscription.objects.filter(pk=mine.pk).update(customer_id="acme")
    Subscription.objects.filter(pk=theirs.pk).update(customer_id="globex")
    user = user_with_role(None)
    assign_perm("subscriptions.view_subscription", user, mine)
    port = Product.objects.get(name="Port 10G")
    assign_perm("subscriptions.view_product", user, port)
    create_port = Workflow.objects.get(name="create_port")
    assign_perm("orchestrator.view_workflow", user, create_port)
    assign_perm("orchestrator.start_workflow", user, create_port)
    return {"user": user, "mine": mine, "theirs": theirs, "product": port}


def port_page(node, name: str = "xe-0/0/9") -> dict:
    return {"customer_id": "acme", "node": str(node), "port_name": name}


def test_create_port_offers_only_the_customers_nodes(acme, api, client):
    mine, theirs = acme["mine"], acme["theirs"]
    body = api(acme["user"]).get("/api/workflows/create_port/")
    assert body.json()["form"]["properties"]["node"]["enum"] == [str(mine.pk)]
    assert str(theirs.pk) not in body.content.decode()

    client.force_login(acme["user"])
    page = client.get(f"/workflows/create_port/start/?product={acme['product'].pk}")
    text = page.content.decode()
    assert page.status_code == 200 and mine.description in text
    assert theirs.description not in text and str(theirs.pk) not in text


def test_create_port_refuses_a_hidden_node_like_an_unknown_one(acme, api, client):
    user, theirs = acme["user"], acme["theirs"]
    before = Process.objects.count()
    start = {"workflow": "create_port", "product": acme["product"].pk}
    forbidden = api(user).post("/api/processes/", {**start, "input": [port_page(theirs.pk)]},
                               format="json")
    unknown = api(user).post("/api/processes/", {**start, "input": [port_page(uuid.uuid4())]},
                             format="json")
    assert forbidden.status_code == unknown.status_code == 400
    assert errors_of(forbidden) == errors_of(unknown)
    assert str(theirs.pk) not in forbidden.content.decode()
    assert theirs.description not in forbidden.content.decode()
    assert Process.objects.count() == before

    client.force_login(user)
    page = client.post("/workflows/create_port/start/", {
        **port_page(theirs.pk), "__product": acme["product"].pk})
    assert page.status_code == 400
    assert theirs.description not in page.content.decode()
    assert Process.objects.count() == before

    ok = api(user).post("/api/processes/", {**start, "input": [port_page(acme["mine"].pk)]},
                        format="json")
    assert ok.status_code == 201, ok.content
    assert ok.json()["state"]["node"] == str(acme["mine"].pk)
