"""Access rules of issue 7: the creator may view their run, schedules need their permission,
a hidden workflow is an unknown one, and no message names what the user may not see."""

from __future__ import annotations

import re

import pytest
from guardian.shortcuts import assign_perm

from orchestrator.models import Process, Workflow
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def granted(synced):
    """No role: may view and start wf_counted through object grants only."""
    user = user_with_role(None)
    workflow = Workflow.objects.get(name="wf_counted")
    assign_perm("orchestrator.view_workflow", user, workflow)
    assign_perm("orchestrator.start_workflow", user, workflow)
    return user


# --- 3. the user who starts a process may view it ----------------------------------------


def test_creator_with_object_grants_only_views_the_run_started_through_the_api(granted, api):
    client = api(granted)
    started = client.post("/api/processes/", {"workflow": "wf_counted", "input": [{"steps": 1}]},
                          format="json")
    assert started.status_code == 201, started.content
    process_id = started.json()["id"]
    assert client.get(f"/api/processes/{process_id}/").status_code == 200
    assert [row["id"] for row in client.get("/api/processes/").json()["results"]] == [process_id]


def test_creator_lands_on_the_process_page_after_a_browser_start(granted, client):
    client.force_login(granted)
    response = client.post("/workflows/wf_counted/start/", {"steps": 1}, follow=True)
    process = Process.objects.get()
    assert response.redirect_chain[-1][0] == f"/processes/{process.pk}/"
    assert response.status_code == 200 and "wf_counted" in response.content.decode()


def test_only_the_creator_gains_the_view(granted, synced, api):
    from orchestrator import services

    process = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}],
                                     user=granted)
    other = user_with_role(None)
    assert api(other).get(f"/api/processes/{process.pk}/").status_code == 404
    system_run = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}])
    assert api(granted).get(f"/api/processes/{system_run.pk}/").status_code == 404


# --- 4. /api/schedules/ needs the schedules page's permission ----------------------------


def test_schedules_api_needs_the_view_periodictask_permission(nobody, granted, viewer, api):
    for user in (nobody, granted):
        for path in ("/api/schedules/", "/api/schedules/1/"):
            response = api(user).get(path)
            assert response.status_code == 403, (user, path)
            assert "view_periodictask" in response.json()["detail"]
    assert api(viewer).get("/api/schedules/").status_code == 200
    assert api(None).get("/api/schedules/").status_code == 401


# --- 5. a workflow the user may not view is unknown to them --------------------------------


def page_text(response) -> str:
    """A page without its per-request tokens (CSRF, script nonce)."""
    return re.sub(r'(value|content|nonce)="[A-Za-z0-9+/=_-]{20,}"', "", response.content.decode())


def test_a_hidden_workflow_answers_like_an_unknown_one(nobody, granted, api, client):
    for user in (nobody, granted):
        hidden = api(user).post("/api/processes/", {"workflow": "wf_audited"}, format="json")
        unknown = api(user).post("/api/processes/", {"workflow": "wf_nope"}, format="json")
        assert hidden.status_code == unknown.status_code == 404
        assert hidden.json()["detail"].replace("wf_audited", "X") == \
            unknown.json()["detail"].replace("wf_nope", "X")
        assert api(user).get("/api/workflows/wf_audited/").json() == {
            "detail": "Unknown workflow 'wf_audited'"
        }
        client.force_login(user)
        for method in (client.get, client.post):
            hidden_page = method("/workflows/wf_audited/start/")
            unknown_page = method("/workflows/wf_nope/start/")
            assert hidden_page.status_code == unknown_page.status_code == 404
            assert page_text(hidden_page) == page_text(unknown_page)
    assert not Process.objects.exists()


# --- 2. no reason or message names what the user may not see -----------------------------


@pytest.fixture
def related(create_box, synced):
    """A box the user may see, in use by a hidden box, and held by a hidden process."""
    from orchestrator import services

    mine = create_box("mine")
    theirs = create_box("theirs-hidden", depends_on=str(mine.pk))
    user = user_with_role(None)
    assign_perm("subscriptions.view_subscription", user, mine)
    for name in ("modify_box", "terminate_box", "modify_note"):
        workflow = Workflow.objects.get(name=name)
        assign_perm("orchestrator.view_workflow", user, workflow)
        assign_perm("orchestrator.start_workflow", user, workflow)
    assign_perm("subscriptions.set_in_sync", user, mine)
    holder = services.start_process(workflow_name="modify_box", subscription=mine.pk,
                                    input_pages=[{"size": 7}])
    mine.refresh_from_db()
    return {"user": user, "mine": mine, "theirs": theirs, "holder": holder}


def hidden_markers(related) -> list[str]:
    theirs = related["theirs"]
    return [str(theirs.pk), theirs.description, str(related["holder"].pk)]


def assert_names_none(text: str, related) -> None:
    for marker in hidden_markers(related):
        assert marker not in text, marker


def test_reasons_do_not_name_hidden_subscriptions_or_processes(related, api, client):
    from subscriptions import selectors

    user, mine = related["user"], related["mine"]
    client_api = api(user)
    detail = client_api.get(f"/api/subscriptions/{mine.pk}/")
    assert detail.json()["out_of_sync_reason"] == (
        "Out of sync: held by process(es) you may not view"
    )
    assert detail.json()["held_by"] == []
    workflows = client_api.get(f"/api/subscriptions/{mine.pk}/workflows/")
    reasons = {row["name"]: row["reason"] for row in workflows.json()}
    assert reasons["modify_note"] == (f"Subscription {mine.pk} is out of sync: held by "
                                      "process(es) you may not view")
    conflict = client_api.post("/api/processes/", {"workflow": "modify_note", "subscription":
                                                   str(mine.pk), "input": [{"note": "x"}]},
                               format="json")
    assert conflict.status_code == 409
    set_in_sync = client_api.post(f"/api/subscriptions/{mine.pk}/set_in_sync/")
    assert set_in_sync.status_code == 409
    assert "process(es) you may not view" in set_in_sync.json()["detail"]
    client.force_login(user)
    page = client.get(f"/subscriptions/{mine.pk}/").content.decode()
    start_page = client.get(f"/workflows/terminate_box/start/?subscription={mine.pk}")
    for response_text in (detail.content.decode(), workflows.content.decode(),
                          conflict.content.decode(), set_in_sync.content.decode(), page,
                          start_page.content.decode()):
        assert_names_none(response_text, related)
    # The system (and anyone who may view them) still hears the names.
    terminate = Workflow.objects.get(name="terminate_box")
    assert str(related["holder"].pk) in selectors.workflow_usability(terminate, mine).reason


def test_in_use_by_a_hidden_subscription_says_so_without_naming_it(related, api):
    from orchestrator.models import ProcessStatus
    from subscriptions import selectors

    mine = related["mine"]
    Process.objects.filter(pk=related["holder"].pk).update(status=ProcessStatus.ABORTED)
    type(mine).objects.filter(pk=mine.pk).update(insync=True)
    reasons = {row["name"]: row["reason"] for row in
               api(related["user"]).get(f"/api/subscriptions/{mine.pk}/workflows/").json()}
    assert reasons["terminate_box"] == ("Subscription is in use by: subscription(s) you may "
                                        "not view")
    refused = api(related["user"]).post("/api/processes/", {
        "workflow": "terminate_box", "subscription": str(mine.pk)}, format="json")
    assert refused.status_code == 409
    assert refused.json()["detail"] == reasons["terminate_box"]
    mine.refresh_from_db()
    assert related["theirs"].description in selectors.workflow_usability(
        Workflow.objects.get(name="terminate_box"), mine
    ).reason  # the system hears the name


def test_products_list_only_the_workflows_the_user_may_view(box_product, api, client):
    user = user_with_role(None)
    assign_perm("subscriptions.view_product", user, box_product)
    assign_perm("orchestrator.view_workflow", user, Workflow.objects.get(name="create_box"))
    rows = api(user).get("/api/products/").json()["results"]
    assert rows[0]["workflows"] == ["create_box"]
    assert api(user).get(f"/api/products/{box_product.pk}/").json()["workflows"] == ["create_box"]
    client.force_login(user)
    page = client.get("/subscriptions/products/").content.decode()
    assert "create_box" in page and "terminate_box" not in page and "modify_note" not in page


# --- the same class elsewhere: a child never names a parent the user may not view ---------


def test_a_child_never_names_a_parent_the_user_may_not_view(granted, api, client):
    from orchestrator import services

    parent = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}])
    child = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}],
                                   user=granted, parent=parent)
    assert api(granted).get(f"/api/processes/{child.pk}/").json()["parent"] is None
    listed = api(granted).get("/api/processes/").json()["results"]
    assert [row["parent"] for row in listed] == [None]
    client.force_login(granted)
    assert str(parent.pk) not in client.get(f"/processes/{child.pk}/").content.decode()
    assign_perm("orchestrator.view_process", granted, parent)
    assert api(granted).get(f"/api/processes/{child.pk}/").json()["parent"] == str(parent.pk)
    assert str(parent.pk) in client.get(f"/processes/{child.pk}/").content.decode()


def test_a_process_shows_only_the_touched_subscriptions_the_user_may_see(related, api, client,
                                                                         admin_user):
    """The process's touched objects (API and page) leave out a subscription the user may not
    see, though the process touched it; a user who may see everything gets both."""
    from subscriptions.models import ProcessSubscription

    holder, mine, theirs = related["holder"], related["mine"], related["theirs"]
    ProcessSubscription.objects.create(process=holder, subscription=theirs)
    assign_perm("orchestrator.view_process", related["user"], holder)
    body = api(related["user"]).get(f"/api/processes/{holder.pk}/").json()
    assert [item["id"] for item in body["touched"]] == [str(mine.pk)]
    client.force_login(related["user"])
    page = client.get(f"/processes/{holder.pk}/").content.decode()
    assert mine.description in page and theirs.description not in page
    everything = api(admin_user).get(f"/api/processes/{holder.pk}/").json()
    assert {item["id"] for item in everything["touched"]} == {str(mine.pk), str(theirs.pk)}
