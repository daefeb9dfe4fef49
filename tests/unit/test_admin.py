"""The admin: read-only records, no secrets, and actions that call the services per object."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from orchestrator import services
from orchestrator.models import EngineSettings, Process, ProcessStatus, ProcessStep, Workflow
from orchestrator.runner import run_process
from tests.factories import user_with_role

CHANGELIST = "admin:orchestrator_process_changelist"


def run(workflow_name: str, pages=None, user=None) -> Process:
    process = services.start_process(
        workflow_name=workflow_name, input_pages=pages or [], user=user
    )
    run_process(str(process.pk))
    process.refresh_from_db()
    return process


def staff(role: str):
    user = user_with_role(role)
    user.is_staff = True
    user.save()
    return user


def act(client, action: str, processes) -> list[str]:
    response = client.post(
        reverse(CHANGELIST),
        {"action": action, "_selected_action": [str(p.pk) for p in processes]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in get_messages(response.wsgi_request)] or [
        str(message) for message in response.context["messages"]
    ]


@pytest.mark.django_db
def test_admin_pages_render_read_only_without_secrets(client, synced):
    admin = staff("admin")
    process = run("wf_secret", [{"username": "bob", "password": "s3cr3t-Pa55-word"}], admin)
    client.force_login(admin)
    for url in (
        reverse("admin:index"),
        reverse(CHANGELIST),
        reverse(CHANGELIST) + "?q=" + str(process.pk)[:8],
        reverse(CHANGELIST) + "?q=not-a-uuid&status__exact=failed",
        reverse("admin:orchestrator_process_change", args=[process.pk]),
        reverse("admin:orchestrator_workflow_changelist") + "?is_task__exact=1",
        reverse("admin:orchestrator_enginesettings_changelist"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        page = response.content.decode()
        assert "s3cr3t-Pa55-word" not in page and process.secrets not in page
    change = client.get(reverse("admin:orchestrator_process_change", args=[process.pk]))
    page = change.content.decode()
    assert "Log in somewhere" in page  # the step inline
    assert 'name="status"' not in page  # read-only
    for hidden in ("lease_owner", "callback_token", "field-secrets"):
        assert hidden not in page
    search = client.get(reverse(CHANGELIST) + "?q=" + str(process.pk)[:8])
    assert list(search.context["cl"].result_list) == [process]
    delete = client.get(reverse("admin:orchestrator_process_delete", args=[process.pk]))
    assert delete.status_code == 403


@pytest.mark.django_db
def test_admin_actions_resume_abort_and_delete_with_per_object_errors(client, synced):
    admin = staff("admin")
    failed = run("wf_api_down", user=admin)
    completed = run("task_demo", [{"message": "done"}], admin)
    audited = run("wf_audited", user=admin)
    client.force_login(admin)

    notes = act(client, "resume_selected", [failed, completed])
    failed.refresh_from_db()
    assert failed.status == ProcessStatus.RESUMED
    assert any("Resumed 1" in note for note in notes)
    assert any("cannot be resumed" in note and str(completed.pk) in note for note in notes)

    notes = act(client, "abort_selected", [failed, completed])
    failed.refresh_from_db()
    assert failed.status == ProcessStatus.ABORTED
    assert any("cannot be aborted" in note for note in notes)

    notes = act(client, "delete_task_runs", [completed, audited])
    assert not Process.objects.filter(pk=completed.pk).exists()
    assert Process.objects.filter(pk=audited.pk).exists()
    assert any("kept for audit" in note for note in notes)
    assert not ProcessStep.objects.filter(process_id=completed.pk).exists()


@pytest.mark.django_db
def test_admin_actions_are_offered_by_permission_and_refused_otherwise(client, synced):
    operator, viewer = staff("operator"), staff("viewer")
    process = run("wf_api_down", user=operator)
    client.force_login(operator)
    actions = client.get(reverse(CHANGELIST)).context["action_form"].fields["action"].choices
    names = {name for name, _ in actions}
    assert {"resume_selected", "abort_selected"} <= names
    assert "delete_task_runs" not in names and "delete_selected" not in names
    act(client, "delete_task_runs", [process])
    assert Process.objects.filter(pk=process.pk).exists()

    client.force_login(viewer)
    assert client.get(reverse(CHANGELIST)).context["action_form"] is None
    act(client, "abort_selected", [process])
    process.refresh_from_db()
    assert process.status == ProcessStatus.API_UNAVAILABLE


@pytest.mark.django_db
def test_workflow_rows_are_read_only_in_the_admin(client, synced):
    admin = staff("admin")
    client.force_login(admin)
    workflow = Workflow.objects.get(name="task_demo")
    assert client.get(reverse("admin:orchestrator_workflow_add")).status_code == 403
    page = client.get(reverse("admin:orchestrator_workflow_change", args=[workflow.pk]))
    assert page.status_code == 200 and 'name="name"' not in page.content.decode()


@pytest.mark.django_db
def test_engine_settings_admin_pauses_through_the_service(client, synced):
    admin = staff("admin")
    client.force_login(admin)
    add = client.post(reverse("admin:orchestrator_enginesettings_add"), {"paused": "on"})
    assert add.status_code == 302
    engine = EngineSettings.objects.get()
    assert engine.paused and engine.changed_by == admin
    response = client.post(
        reverse("admin:orchestrator_enginesettings_changelist"),
        {"action": "unpause_engine", "_selected_action": [str(engine.pk)]},
    )
    assert response.status_code == 302
    assert not EngineSettings.objects.get().paused
    operator = staff("operator")
    client.force_login(operator)
    change = client.post(
        reverse("admin:orchestrator_enginesettings_change", args=[engine.pk]), {"paused": "on"}
    )
    assert change.status_code == 403
    assert not EngineSettings.objects.get().paused
