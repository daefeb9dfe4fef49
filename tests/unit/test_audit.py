"""The audit trail: what people do outside a process's own steps — who, what, when, from
where — recorded by the services (pages, API and admin alike), the admin for every model,
and the auth signals; read on a page and an API that only admins (or holders of
`orchestrator.view_auditevent`) may open."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from orchestrator import registry, services
from orchestrator.audit import AuditedModelAdminMixin, record_action
from orchestrator.models import AuditEvent, Process
from subscriptions.models import Product, ProductType
from tests.factories import PASSWORD, user_with_role
from tests.helpers import run, start, start_on

pytestmark = pytest.mark.django_db

CLIENT = "203.0.113.7"


def events(action: str):
    return AuditEvent.objects.filter(action=action)


def staff(role: str):
    user = user_with_role(role)
    user.is_staff = True
    user.save()
    return user


def test_page_actions_are_recorded_with_who_and_from_where(client, admin_user):
    client.force_login(admin_user)
    client.post(reverse("engine-pause"), {"paused": "1"}, REMOTE_ADDR=CLIENT)
    client.post(reverse("engine-pause"), {"paused": "0"}, REMOTE_ADDR=CLIENT)
    pause, unpause = events("engine.pause").get(), events("engine.unpause").get()
    assert (pause.actor, pause.actor_name, pause.via, pause.client_address) == (
        admin_user, admin_user.username, "page", CLIENT
    )
    assert pause.object_type == "orchestrator.enginesettings" and unpause.at >= pause.at

    failed = run(start("wf_api_down", user=admin_user))
    client.post(reverse("process-resume", args=[failed.pk]), REMOTE_ADDR=CLIENT)
    retry = events("process.retry").get()
    assert retry.object_id == str(failed.pk) and "api_unavailable" in retry.summary


def test_api_actions_are_recorded_and_a_refused_one_leaves_nothing(api, admin_user, create_box):
    client = api(admin_user)
    started = client.post("/api/processes/", {"workflow": "task_demo", "input": [
        {"message": "hi"}]}, format="json", REMOTE_ADDR=CLIENT)
    assert started.status_code == 201
    start_row = events("process.start").get()
    assert (start_row.via, start_row.client_address, start_row.object_id) == (
        "api", CLIENT, started.json()["id"]
    )
    process = Process.objects.get(pk=started.json()["id"])
    assert client.post(f"/api/processes/{process.pk}/abort/").status_code == 200
    assert events("process.abort").get().object_id == str(process.pk)
    # Aborting again is refused (409): the refusal writes no audit row.
    assert client.post(f"/api/processes/{process.pk}/abort/").status_code == 409
    assert events("process.abort").count() == 1
    assert client.delete(f"/api/processes/{process.pk}/").status_code == 204
    deleted = events("process.delete").get()
    assert deleted.object_id == str(process.pk) and "task run" in deleted.summary

    box = create_box()
    held = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    services.abort_process(process=held, user=admin_user)
    assert client.post(f"/api/subscriptions/{box.pk}/set_in_sync/").status_code == 200
    insync = events("subscription.set_in_sync").get()
    assert (insync.object_type, insync.object_id) == ("subscriptions.subscription", str(box.pk))


def test_no_permission_no_action_no_row(api, viewer):
    process = run(start("wf_api_down"))
    assert api(viewer).post(f"/api/processes/{process.pk}/abort/").status_code == 403
    assert not AuditEvent.objects.filter(action__startswith="process.abort").exists()
    # The system's own starts (schedules, sub-runs) are not people's actions.
    assert not events("process.start").exists()


def test_every_admin_model_records_its_edits(client, create_box, synced):
    """Each ModelAdmin on the site, the project's and every library's, records add, change and
    delete (bulk deletes included) in the audit trail with the admin's own summary."""
    assert admin.site._registry and all(
        isinstance(model_admin, AuditedModelAdminMixin)
        for model_admin in admin.site._registry.values()
    )
    superuser = user_with_role(None, is_staff=True, is_superuser=True)
    client.force_login(superuser)
    # A library's admin (django-celery-beat): a schedule edit.
    every = IntervalSchedule.objects.create(every=10, period="seconds")
    task = PeriodicTask.objects.create(name="nightly thing", task="orchestrator.ping",
                                       interval=every)
    url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data.update(enabled="", description="paused by hand")
    for name in ("start_time", "expires", "last_run_at"):
        data.pop(name, None)
        data[f"{name}_0"] = data[f"{name}_1"] = ""
    response = client.post(url, data, REMOTE_ADDR=CLIENT)
    assert response.status_code == 302, response.context["adminform"].form.errors
    change = events("admin.change").get(object_type="django_celery_beat.periodictask")
    assert change.object_id == str(task.pk) and change.via == "admin"
    assert change.client_address == CLIENT and "Enabled" in change.summary
    # Deleting several at once (one bulk LogEntry insert) records each of them.
    kind = ProductType.objects.create(name="Spare")
    spares = [Product.objects.create(name=f"Spare {n}", product_type=kind) for n in (1, 2)]
    response = client.post(
        reverse("admin:subscriptions_product_changelist"),
        {"action": "delete_selected", "_selected_action": [p.pk for p in spares], "post": "yes"},
    )
    assert response.status_code == 302
    assert set(events("admin.delete").values_list("object_repr", flat=True)) == {
        "Spare 1", "Spare 2"
    }
    # Adding a user (django.contrib.auth's admin).
    response = client.post(reverse("admin:auth_user_add"), {
        "username": "newcomer", "password1": PASSWORD, "password2": PASSWORD,
        "usable_password": "true",
    })
    assert response.status_code == 302
    added = events("admin.add").get(object_type="auth.user")
    assert added.object_repr == "newcomer" and PASSWORD not in str(added.detail)


def test_logins_and_failed_logins_are_recorded(client, viewer, settings):
    settings.ORCHESTRATOR_PROXY_COUNT = 1
    forwarded = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 198.51.100.9"}
    client.post(reverse("login"), {"username": viewer.username, "password": "wrong"},
                **forwarded)
    failed = events("auth.login_failed").get()
    assert failed.actor is None and failed.actor_name == viewer.username
    # Behind one proxy the client is the entry the proxy wrote, not what a client may send.
    assert failed.client_address == "198.51.100.9"
    client.post(reverse("login"), {"username": viewer.username, "password": PASSWORD},
                **forwarded)
    assert events("auth.login").get().actor == viewer
    client.post(reverse("logout"))
    assert events("auth.logout").get().actor == viewer


def test_workflow_sync_records_what_it_changed(synced):
    from orchestrator.models import Workflow

    Workflow.objects.filter(name="task_demo").update(description="edited by hand")
    services.sync_workflows()
    sync = events("workflows.sync").first()  # the newest
    assert sync.via == "system" and sync.actor is None
    described = registry.get_definition("task_demo").catalogue_row()["description"]
    assert sync.detail["changes"] == [
        {"action": "update", "workflow": "task_demo", "values": {"description": described}}
    ]


def test_hostile_values_are_stored_safely(synced):
    event = record_action("x" * 500, actor_name="a\x00b" * 100, object_repr="\x00" * 300,
                          summary="s" * 2000, detail={"k\x00": ["v\x00", float("nan"), {1, 2}]})
    event.refresh_from_db()
    assert len(event.action) == 100 and "\x00" not in event.actor_name
    assert len(event.summary) == 500 and event.detail["k"][0] == "v"


# --- reading it: the page and the API ----------------------------------------------------------


def test_only_admins_and_holders_of_the_view_permission_read_it(client, api, synced):
    record_action("engine.pause", summary="for the test")
    viewer, operator, admin_user = (user_with_role(r) for r in ("viewer", "operator", "admin"))
    auditor = user_with_role(None)
    auditor.user_permissions.add(Permission.objects.get(codename="view_auditevent"))
    for user, allowed in ((viewer, False), (operator, False), (admin_user, True),
                          (auditor, True)):
        client.force_login(user)
        page = client.get(reverse("audit-list"))
        assert page.status_code == (200 if allowed else 403), user
        assert ('href="/audit/"' in client.get("/").content.decode()) is allowed
        assert api(user).get("/api/audit/").status_code == (200 if allowed else 403)
    assert api().get("/api/audit/").status_code in (401, 403)
    # Append-only: there is no permission to add, change or delete an audit event at all.
    assert not Permission.objects.filter(
        codename__in=["add_auditevent", "change_auditevent", "delete_auditevent"]
    ).exists()


def test_api_filters_and_malformed_filters(api, admin_user, create_box):
    box = create_box()
    record_action("subscription.set_in_sync", user=admin_user, target=box)
    record_action("process.abort", user=admin_user, object_type="orchestrator.process",
                  object_id="p1")
    record_action("engine.pause")
    client = api(admin_user)

    def actions(query: str) -> list[str]:
        response = client.get("/api/audit/" + query)
        assert response.status_code == 200, response.json()
        return [row["action"] for row in response.json()["results"]]

    assert actions("?action=process.abort") == ["process.abort"]
    assert actions("?action=process.") == ["process.abort"]
    assert actions(f"?actor={admin_user.username}&object_type=subscriptions.subscription") == [
        "subscription.set_in_sync"
    ]
    assert actions(f"?object_id={box.pk}") == ["subscription.set_in_sync"]
    assert "engine.pause" in actions("?via=system")
    assert actions("?since=2999-01-01T00:00:00Z") == []
    row = client.get("/api/audit/?action=engine.pause").json()["results"][0]
    assert set(row) >= {"at", "actor", "action", "object_type", "object_id", "client_address",
                        "via", "summary", "detail"}
    assert client.get(f"/api/audit/{row['id']}/").json()["action"] == "engine.pause"
    for query, field in (("?since=yesterday", "since"), ("?until=2026-13-45", "until"),
                         ("?client_address=not-an-ip", "client_address"), ("?via=bogus", "via"),
                         ("?actor=a%00b", "actor"), ("?action=" + "x" * 200, "action")):
        response = client.get("/api/audit/" + query)
        assert response.status_code == 400 and field in response.json(), (query, response.json())
    for url in ("/api/audit/99999999999999999999999/", "/api/audit/abc/", "/api/audit/0/"):
        assert client.get(url).status_code == 404, url
    assert client.post("/api/audit/", {}, format="json").status_code == 405


def test_the_page_filters_and_says_what_is_wrong(client, admin_user, create_box):
    box = create_box()
    record_action("subscription.set_in_sync", user=admin_user, target=box)
    client.force_login(admin_user)
    page = client.get(reverse("audit-list") + "?action=subscription.set_in_sync")
    text = page.content.decode()
    assert page.status_code == 200 and f'href="/subscriptions/{box.pk}/"' in text
    bad = client.get(reverse("audit-list") + "?since=yesterday")
    text = bad.content.decode()
    assert bad.status_code == 400  # like every list page: the error shown, nothing listed
    assert "Enter a valid date/time" in text and "No audit event matches" in text
