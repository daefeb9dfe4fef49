"""Resume, abort, delete, callbacks, the engine switch and schedules through the API."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.crypto import token_digest
from orchestrator.models import EngineSettings, Process, ProcessStatus, ProcessStep
from orchestrator.schedules import SWEEP_TASK_NAME, set_workflow_schedule
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


def post(client: APIClient, path: str, data=None):
    return client.post(path, data if data is not None else {}, format="json")


# --- resume -------------------------------------------------------------------------------


def test_operator_submits_input_to_a_suspended_process(operator, api):
    process = run(start("wf_input", user=operator))
    response = post(
        api(operator),
        f"/api/processes/{process.pk}/resume/",
        {"input": [{"confirm": True, "vlan": 42}]},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "resumed" and body["form"] is None
    assert body["state"]["vlan"] == 42
    process = run(process)
    assert process.status == ProcessStatus.COMPLETED
    assert process.state["vlan_used"] == 42


def test_invalid_resume_input_is_a_400_and_changes_nothing(operator, api):
    process = run(start("wf_input", user=operator))
    steps_before = ProcessStep.objects.filter(process=process).count()
    response = post(
        api(operator),
        f"/api/processes/{process.pk}/resume/",
        {"input": [{"confirm": True, "vlan": 5000}]},
    )
    assert response.status_code == 400
    body = response.json()
    assert "vlan" in body and body["form"]["title"] == "ConfirmForm"
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUSPENDED
    assert ProcessStep.objects.filter(process=process).count() == steps_before


def test_resume_of_a_suspended_process_without_input_asks_for_the_page(operator, api):
    process = run(start("wf_input", user=operator))
    response = post(api(operator), f"/api/processes/{process.pk}/resume/")
    assert response.status_code == 400
    assert response.json()["form"]["title"] == "ConfirmForm"


def test_retry_of_a_failed_process(operator, api):
    process = run(start("wf_counted", {"steps": 3, "fail_at": 2}, user=operator))
    assert process.status == ProcessStatus.FAILED
    response = post(api(operator), f"/api/processes/{process.pk}/resume/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "resumed"
    assert body["failed_reason"] == "" and body["traceback"] == ""


def test_resume_of_completed_or_aborted_is_a_409(operator, api):
    completed = run(start("wf_audited", user=operator))
    aborted = run(start("wf_abort", user=operator))
    assert (completed.status, aborted.status) == ("completed", "aborted")
    for process in (completed, aborted):
        response = post(api(operator), f"/api/processes/{process.pk}/resume/", {"input": []})
        assert response.status_code == 409
        assert "cannot be resumed" in response.json()["detail"]


def test_viewer_cannot_resume_and_nobody_cannot_see(operator, viewer, nobody, api):
    process = run(start("wf_input", user=operator))
    path = f"/api/processes/{process.pk}/resume/"
    assert post(api(viewer), path, {"input": [{"confirm": True, "vlan": 1}]}).status_code == 403
    assert post(api(nobody), path, {"input": [{"confirm": True, "vlan": 1}]}).status_code == 404
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUSPENDED


@pytest.mark.parametrize("data", [{"input": {"confirm": True}}, {"input": "x"}, {"input": [1]}])
def test_malformed_resume_bodies_are_a_400(operator, api, data):
    process = run(start("wf_input", user=operator))
    response = post(api(operator), f"/api/processes/{process.pk}/resume/", data)
    assert response.status_code == 400
    assert "input" in response.json()


# --- abort and delete ---------------------------------------------------------------------


def test_operator_aborts_and_a_second_abort_is_a_409(operator, api):
    process = run(start("wf_input", user=operator))
    response = post(api(operator), f"/api/processes/{process.pk}/abort/")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "aborted" and body["finished_at"]
    assert body["steps"][-1]["name"] == "Abort"
    assert body["steps"][-1]["created_by"] == operator.username
    assert post(api(operator), f"/api/processes/{process.pk}/abort/").status_code == 409


def test_viewer_cannot_abort(operator, viewer, api):
    process = start("wf_audited", user=operator)
    assert post(api(viewer), f"/api/processes/{process.pk}/abort/").status_code == 403
    process.refresh_from_db()
    assert process.status == ProcessStatus.CREATED


def test_only_admin_deletes_task_runs(operator, admin_user, api):
    process = run(start("wf_counted", {"steps": 1}, user=operator))
    path = f"/api/processes/{process.pk}/"
    assert api(operator).delete(path).status_code == 403
    assert Process.objects.filter(pk=process.pk).exists()
    response = api(admin_user).delete(path)
    assert response.status_code == 204
    assert not Process.objects.filter(pk=process.pk).exists()
    assert api(admin_user).delete(path).status_code == 404


def test_deleting_a_workflow_run_is_a_409(operator, admin_user, api):
    process = run(start("wf_audited", user=operator))
    response = api(admin_user).delete(f"/api/processes/{process.pk}/")
    assert response.status_code == 409
    assert "kept for audit" in response.json()["detail"]
    assert Process.objects.filter(pk=process.pk).exists()


# --- callbacks ----------------------------------------------------------------------------


@pytest.fixture
def waiting(operator, monkeypatch):
    """A wf_callback run awaiting its callback, with a known token."""
    from orchestrator import runner
    from tests import workflows

    monkeypatch.setattr(runner.token_generator, "token_urlsafe", lambda size: "known-token")
    # Leave the workflow's cached step list as it was: other tests patch its steps' functions.
    monkeypatch.setattr(workflows.wf_callback, "_steps", workflows.wf_callback._steps)
    process = run(start("wf_callback", user=operator))
    assert process.status == ProcessStatus.AWAITING_CALLBACK
    assert process.callback_token == token_digest("known-token")
    return process


def test_the_callback_route_resumes_the_process_without_login(waiting, api):
    path = f"/api/processes/{waiting.pk}/callback/known-token/"
    response = api().post(path, {"ok": True, "id": 7}, format="json")
    assert response.status_code == 200
    assert response.json() == {"detail": "accepted"}
    waiting.refresh_from_db()
    assert waiting.status == ProcessStatus.RESUMED
    assert waiting.state["callback_result"] == {"ok": True, "id": 7}
    assert run(waiting).status == ProcessStatus.COMPLETED
    # the token is used up
    assert api().post(path, {"ok": True}, format="json").status_code == 404


def test_callback_needs_no_csrf_token_even_with_a_session(waiting, operator):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(operator)
    response = client.post(
        f"/api/processes/{waiting.pk}/callback/known-token/", {"ok": True}, format="json"
    )
    assert response.status_code == 200


def test_callback_with_a_wrong_token_or_process_is_a_404(waiting, operator, api):
    other = start("wf_audited", user=operator)
    for path in (
        f"/api/processes/{waiting.pk}/callback/wrong-token/",
        f"/api/processes/{other.pk}/callback/known-token/",
        "/api/processes/not-a-uuid/callback/known-token/",
    ):
        response = api().post(path, {"ok": True}, format="json")
        assert response.status_code == 404, path
        assert "detail" in response.json()
    waiting.refresh_from_db()
    assert waiting.status == ProcessStatus.AWAITING_CALLBACK


@pytest.mark.parametrize("body", ["[1, 2]", '"text"', "42", "null", "{broken"])
def test_callback_body_must_be_a_json_object(waiting, api, body):
    response = api().post(
        f"/api/processes/{waiting.pk}/callback/known-token/",
        body,
        content_type="application/json",
    )
    assert response.status_code == 400
    waiting.refresh_from_db()
    assert waiting.status == ProcessStatus.AWAITING_CALLBACK


@pytest.mark.parametrize("route", ["", "progress/"])
def test_an_expired_callback_token_is_refused_at_once(waiting, api, route):
    """Expired but not yet swept: refused on use (410), and the run fails as the sweep would."""
    Process.objects.filter(pk=waiting.pk).update(
        callback_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    path = f"/api/processes/{waiting.pk}/callback/known-token/{route}"
    response = api().post(path, {"ok": True, "message": "late"}, format="json")
    assert response.status_code == 410, response.content
    assert "expired" in response.json()["detail"]
    waiting.refresh_from_db()
    assert waiting.status == ProcessStatus.FAILED
    assert waiting.failed_reason == "Callback timed out"
    assert "callback_result" not in waiting.state and waiting.callback_progress == ""
    assert waiting.callback_token is None
    assert api().post(path, {"ok": True, "message": "again"}, format="json").status_code == 404


def test_a_callback_token_not_yet_expired_is_accepted(waiting, api):
    Process.objects.filter(pk=waiting.pk).update(
        callback_expires_at=timezone.now() + datetime.timedelta(minutes=5)
    )
    path = f"/api/processes/{waiting.pk}/callback/known-token/"
    assert api().post(path, {"ok": True}, format="json").status_code == 200


@pytest.mark.parametrize("route", ["", "progress/"])
@pytest.mark.parametrize(
    "body",
    [
        b'{"ok": true, "message": "m", "n": 1e400}',
        b'{"ok": true, "message": "m", "n": -1e400}',
        b'{"ok": true, "message": "m", "n": NaN}',
        b'{"ok": true, "message": "m", "n": Infinity}',
        b'{"ok": true, "message": "m", "n": [1, {"deep": -Infinity}]}',
        b'{"ok": tru}',
        b'{"ok": true, "message": "m"',
        b"\xff\xfe{}",
        b'{"message": "\\u0000"}',
        b'{"n": 1' + b"0" * 5000 + b"}",
    ],
)
def test_callback_bodies_that_are_not_storable_json_are_a_400(waiting, api, route, body):
    response = api().post(
        f"/api/processes/{waiting.pk}/callback/known-token/{route}",
        body,
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert isinstance(response.json()["detail"], str)
    waiting.refresh_from_db()
    assert waiting.status == ProcessStatus.AWAITING_CALLBACK
    assert waiting.callback_progress == "" and "callback_result" not in waiting.state


def test_callback_progress(waiting, operator, api):
    path = f"/api/processes/{waiting.pk}/callback/known-token/progress/"
    response = api().post(path, {"message": "40% copied"}, format="json")
    assert response.status_code == 200
    waiting.refresh_from_db()
    assert waiting.callback_progress == "40% copied"
    assert waiting.status == ProcessStatus.AWAITING_CALLBACK
    detail = api(operator).get(f"/api/processes/{waiting.pk}/").json()
    assert detail["callback_progress"] == "40% copied"
    assert "known-token" not in str(detail)
    assert api().post(path, {"message": ""}, format="json").status_code == 400
    assert api().post(path, ["x"], format="json").status_code == 400
    assert api().post(path, {"message": 5}, format="json").status_code == 400
    wrong = f"/api/processes/{waiting.pk}/callback/nope/progress/"
    assert api().post(wrong, {"message": "hi"}, format="json").status_code == 404


# --- engine -------------------------------------------------------------------------------


def test_engine_status_and_pause(viewer, admin_user, operator, api):
    assert api(viewer).get("/api/engine/").json() == {"paused": False}
    assert post(api(operator), "/api/engine/", {"paused": True}).status_code == 403
    response = post(api(admin_user), "/api/engine/", {"paused": True})
    assert response.status_code == 200 and response.json() == {"paused": True}
    assert api(viewer).get("/api/engine/").json() == {"paused": True}
    assert EngineSettings.objects.get(pk=1).changed_by == admin_user
    started = post(api(operator), "/api/processes/", {"workflow": "wf_audited"})
    assert started.status_code == 201 and started.json()["status"] == "queued"
    assert post(api(admin_user), "/api/engine/", {"paused": False}).json() == {"paused": False}


@pytest.mark.parametrize("data", [{}, {"paused": "maybe"}, {"paused": None}, {"paused": [1]}])
def test_engine_pause_needs_a_boolean(admin_user, api, data):
    response = post(api(admin_user), "/api/engine/", data)
    assert response.status_code == 400
    assert "paused" in response.json()


# --- schedules ----------------------------------------------------------------------------


def test_schedules_list_cron_and_interval_tasks(synced, viewer, api):
    set_workflow_schedule("wf_audited", "0 3 * * 1", "core")
    response = api(viewer).get("/api/schedules/")
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.json()["results"]}
    cron = rows["workflow:wf_audited"]
    assert cron["cron"] == "0 3 * * 1" and cron["interval"] is None
    assert cron["workflow"] == "wf_audited" and cron["enabled"] is True
    assert cron["task"] == "orchestrator.start_scheduled_workflow"
    assert "last_run_at" in cron
    sweep = rows[SWEEP_TASK_NAME]
    assert sweep["cron"] is None and sweep["interval"].startswith("every ")
    assert sweep["workflow"] is None
    detail = api(viewer).get(f"/api/schedules/{cron['id']}/")
    assert detail.status_code == 200 and detail.json()["name"] == "workflow:wf_audited"
    assert api(viewer).get("/api/schedules/abc/").status_code == 404


def test_schedules_are_read_only(admin_user, api):
    response = post(api(admin_user), "/api/schedules/", {"name": "x", "task": "y"})
    assert response.status_code == 405
