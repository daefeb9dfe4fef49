"""Starting, listing and reading processes through the API."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from orchestrator.models import Process, ProcessStatus, ProcessStep
from tests.helpers import run, start

pytestmark = pytest.mark.django_db

PASSWORD = "hunter2-Sup3r-S3cret-!"  # appears nowhere in any API answer


# --- starting -----------------------------------------------------------------------------


def test_operator_starts_a_process(operator, api):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "wf_counted", "input": [{"steps": 3}], "tags": ["branch:main", "node:7"]},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    process = Process.objects.get(pk=body["id"])
    assert body["status"] == "created" == process.status
    assert body["workflow"] == "wf_counted"
    assert body["created_by"] == operator.username
    assert body["tags"] == ["branch:main", "node:7"]
    assert body["state"]["steps"] == 3
    assert body["steps"] == [] and body["form"] is None
    assert body["planned_steps"][0] == "Start" and body["position"] == 0


def test_subscription_and_product_are_accepted(operator, api):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "wf_audited", "subscription": None, "product": None},
        format="json",
    )
    assert response.status_code == 201, response.content


def test_viewer_cannot_start(viewer, api):
    response = api(viewer).post("/api/processes/", {"workflow": "wf_audited"}, format="json")
    assert response.status_code == 403
    assert "start_workflow" in response.json()["detail"]
    assert not Process.objects.exists()


def test_unknown_workflow_is_a_404_naming_it(operator, api):
    response = api(operator).post("/api/processes/", {"workflow": "nope"}, format="json")
    assert response.status_code == 404
    assert response.json()["detail"] == "Unknown workflow 'nope'"


def test_invalid_input_is_a_400_with_field_errors_and_nothing_is_stored(operator, api):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "wf_counted", "input": [{"steps": 0, "sleep": "slow"}]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "steps" in body and "sleep" in body
    assert body["detail"].startswith("Invalid input on page 1")
    assert set(body["form"]["properties"]) == {"steps", "sleep", "fail_at"}
    assert not Process.objects.exists()


def test_missing_page_is_a_400_with_the_next_pages_schema(operator, api):
    response = api(operator).post("/api/processes/", {"workflow": "wf_secret"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["input"] == ["Another page is required."]
    assert body["form"]["title"] == "SecretForm"
    assert not Process.objects.exists()


def test_run_predicate_refusal_is_a_412_and_nothing_is_stored(operator, api):
    response = api(operator).post("/api/processes/", {"workflow": "wf_refused"}, format="json")
    assert response.status_code == 412
    assert response.json() == {"detail": "This workflow is refused by its run predicate"}
    assert not Process.objects.exists()


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "workflow"),
        ({"workflow": 5 * ["x"]}, "workflow"),
        ({"workflow": "x" * 256}, "workflow"),
        ({"workflow": "wf_counted", "input": {"steps": 3}}, "input"),
        ({"workflow": "wf_counted", "input": "steps=3"}, "input"),
        ({"workflow": "wf_counted", "input": [[1, 2]]}, "input"),
        ({"workflow": "wf_counted", "input": [{"steps": 3}] * 21}, "input"),
        ({"workflow": "wf_counted", "input": None}, "input"),
        ({"workflow": "wf_counted", "input": [{"steps": 3}], "tags": "a,b"}, "tags"),
        ({"workflow": "wf_counted", "input": [{"steps": 3}], "tags": [{"x": 1}]}, "tags"),
        ({"workflow": "wf_counted", "input": [{"steps": 3}], "tags": ["t" * 300]}, "tags"),
    ],
)
def test_malformed_start_requests_are_a_400_naming_the_field(operator, api, payload, field):
    response = api(operator).post("/api/processes/", payload, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert "detail" in response.json()
    assert not Process.objects.exists()


# --- the detail ---------------------------------------------------------------------------


def test_detail_of_a_completed_run_shows_the_steps_and_what_each_changed(operator, viewer, api):
    process = run(start("wf_counted", {"steps": 2}, user=operator, tags=["branch:main"]))
    response = api(viewer).get(f"/api/processes/{process.pk}/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "completed" and body["finished_at"]
    assert body["tags"] == ["branch:main"]
    names = [s["name"] for s in body["steps"]]
    assert names == ["Start", *(f"Step {i}" for i in range(20)), "Done"]
    step_0 = body["steps"][1]
    assert step_0["status"] == "success"
    assert step_0["changed"] == {"step_0": {"old": None, "new": "done"}}
    assert step_0["state"]["step_0"] == "done"
    assert step_0["started_at"] and step_0["completed_at"]
    assert body["steps"][-1]["changed"] == {}
    assert body["state"]["step_19"] == "done"
    for hidden in (
        "secrets",
        "callback_token",
        "lease_owner",
        "lease_expires_at",
        "callback_expires_at",
        "delivery_count",
    ):
        assert hidden not in body


def test_detail_of_a_suspended_process_has_its_form(operator, api):
    process = run(start("wf_input", user=operator))
    assert process.status == ProcessStatus.SUSPENDED
    body = api(operator).get(f"/api/processes/{process.pk}/").json()
    assert body["status"] == "suspended"
    assert body["form"]["title"] == "ConfirmForm"
    assert set(body["form"]["required"]) == {"confirm", "vlan"}
    assert body["assignee"] == "operator"
    assert body["next_step"] == "Confirm"


def test_detail_of_a_failed_process_has_reason_and_traceback(operator, api):
    process = run(start("wf_counted", {"steps": 3, "fail_at": 1}, user=operator))
    body = api(operator).get(f"/api/processes/{process.pk}/").json()
    assert body["status"] == "failed"
    assert "step 1 fails on purpose" in body["failed_reason"]
    assert "RuntimeError" in body["traceback"]
    assert body["steps"][-1]["status"] == "failed"
    assert body["form"] is None


def test_the_secret_never_appears_in_the_detail(operator, api):
    process = run(start("wf_secret", {"username": "alice", "password": PASSWORD}, user=operator))
    assert process.status == ProcessStatus.COMPLETED
    response = api(operator).get(f"/api/processes/{process.pk}/")
    assert response.status_code == 200
    raw = response.content.decode()
    assert PASSWORD not in raw
    assert "alice logged in" in raw  # the state is there, only the secret is not
    assert response.json()["state"]["password_length"] == len(PASSWORD)
    listing = api(operator).get("/api/processes/").content.decode()
    assert PASSWORD not in listing


def test_the_secret_is_not_echoed_when_starting(operator, api):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "wf_secret", "input": [{"username": "bob", "password": PASSWORD}]},
        format="json",
    )
    assert response.status_code == 201
    assert PASSWORD not in response.content.decode()


def test_invisible_and_malformed_ids_are_404(synced, operator, nobody, api):
    process = start("wf_audited", user=operator)
    assert api(nobody).get(f"/api/processes/{process.pk}/").status_code == 404
    assert api(operator).get("/api/processes/not-a-uuid/").status_code == 404
    missing = "00000000-0000-0000-0000-000000000000"
    response = api(operator).get(f"/api/processes/{missing}/")
    assert response.status_code == 404
    assert "detail" in response.json()


# --- the list -----------------------------------------------------------------------------


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_list_filters(operator, viewer, api):
    completed = run(start("wf_counted", {"steps": 1}, user=operator, tags=["branch:main"]))
    suspended = run(start("wf_input", user=operator, tags=["branch:dev"]))
    audited = start("wf_audited", user=operator, tags=["branch:main", "node:1"])
    client = api(viewer)
    everything = {str(p.pk) for p in (completed, suspended, audited)}
    assert ids(client.get("/api/processes/")) == everything
    assert ids(client.get("/api/processes/?status=suspended")) == {str(suspended.pk)}
    assert ids(client.get("/api/processes/?workflow=wf_counted")) == {str(completed.pk)}
    assert ids(client.get("/api/processes/?tag=branch:main")) == {
        str(completed.pk),
        str(audited.pk),
    }
    assert ids(client.get("/api/processes/?tag=node:1&status=created")) == {str(audited.pk)}
    assert ids(client.get("/api/processes/?is_task=false")) == {str(audited.pk)}
    assert ids(client.get("/api/processes/?is_task=true")) == {str(completed.pk), str(suspended.pk)}
    not_an_id = client.get("/api/processes/?subscription=whatever")
    assert not_an_id.status_code == 400 and "subscription" in not_an_id.json()
    assert ids(client.get("/api/processes/?workflow=nope")) == set()
    bad = client.get("/api/processes/?status=bogus")
    assert bad.status_code == 400 and "status" in bad.json()


def test_list_rows_and_pagination(operator, viewer, api):
    for _ in range(3):
        start("wf_audited", user=operator)
    body = api(viewer).get("/api/processes/?limit=2").json()
    assert body["count"] == 3 and len(body["results"]) == 2 and body["next"]
    everything = api(viewer).get("/api/processes/?limit=100000").json()
    assert len(everything["results"]) == 3
    row = body["results"][0]
    assert row["workflow"] == "wf_audited" and row["created_by"] == operator.username
    assert "state" not in row and "secrets" not in row and "steps" not in row


def test_a_user_sees_only_what_they_may_view(operator, nobody, api):
    first = start("wf_audited", user=operator)
    start("wf_audited", user=operator)
    assert api(nobody).get("/api/processes/").json()["count"] == 0
    assign_perm("orchestrator.view_process", nobody, first)
    assert ids(api(nobody).get("/api/processes/")) == {str(first.pk)}
    assert api(nobody).get(f"/api/processes/{first.pk}/").status_code == 200


def test_list_queries_do_not_grow_with_the_rows(operator, viewer, api):
    client = api(viewer)
    start("wf_audited", user=operator, tags=["a", "b"])
    client.get("/api/processes/")  # warm caches (content types, permissions)
    with CaptureQueriesContext(connection) as few:
        assert client.get("/api/processes/").status_code == 200
    for index in range(5):
        parent = start("wf_audited", user=operator, tags=[f"t{index}", "x"])
        start("wf_audited", user=operator, parent=parent)
    with CaptureQueriesContext(connection) as many:
        assert client.get("/api/processes/").json()["count"] == 11
    assert len(many) == len(few)


def test_detail_queries_do_not_grow_with_the_steps(operator, viewer, api):
    client = api(viewer)
    short = run(start("wf_audited", user=operator, tags=["a"]))
    long = run(start("wf_counted", {"steps": 15}, user=operator, tags=["a", "b", "c"]))
    assert ProcessStep.objects.filter(process=short).count() == 2
    assert ProcessStep.objects.filter(process=long).count() == 22
    client.get(f"/api/processes/{short.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/api/processes/{short.pk}/")
    with CaptureQueriesContext(connection) as many:
        client.get(f"/api/processes/{long.pk}/")
    assert len(many) == len(few)


def test_step_created_by_names_who_submitted_input(operator, api):
    process = run(start("wf_input", user=operator))
    response = api(operator).post(
        f"/api/processes/{process.pk}/resume/",
        {"input": [{"confirm": True, "vlan": 12}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    confirm = [s for s in response.json()["steps"] if s["name"] == "Confirm"]
    assert confirm[-1]["created_by"] == operator.username
    assert confirm[-1]["changed"]["vlan"] == {"old": None, "new": 12}


def test_the_page_size_is_bounded(operator, viewer, api, monkeypatch):
    from orchestrator.api.views import Pagination

    monkeypatch.setattr(Pagination, "max_limit", 2)
    for _ in range(3):
        start("wf_audited", user=operator)
    body = api(viewer).get("/api/processes/?limit=100").json()
    assert body["count"] == 3 and len(body["results"]) == 2


def test_a_step_changing_one_nested_key_shows_that_path_only(operator, api):
    process = run(start("wf_nested", user=operator))
    body = api(operator).get(f"/api/processes/{process.pk}/").json()
    upgrade = next(step for step in body["steps"] if step["name"] == "Upgrade port")
    assert upgrade["changed"] == {
        "config.ports[1].speed": {"old": "10G", "new": "100G"},
        "config.mtu": {"old": None, "new": 9000},
    }
    assert upgrade["removed"] == ["config.legacy"]
    build = next(step for step in body["steps"] if step["name"] == "Build config")
    assert list(build["changed"]) == ["config"]  # new: the whole object, once
