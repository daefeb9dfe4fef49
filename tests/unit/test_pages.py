"""The server-rendered pages: login, permissions per role, forms, hostile input, no leaks."""

from __future__ import annotations

import uuid

import pytest
from django import forms
from django.http import QueryDict
from django.urls import reverse

from orchestrator import services, views
from orchestrator.forms import PAGES_FIELD, PagedForm, SecretField
from orchestrator.models import EngineSettings, Process, ProcessStatus, ProcessStep, ProcessTag
from orchestrator.runner import run_process
from tests.factories import user_with_role

SECRET = "hunter2-Very-Secret-Value-42"


def start(workflow_name: str, pages=None, user=None, **kwargs) -> Process:
    return services.start_process(
        workflow_name=workflow_name, input_pages=pages or [], user=user, **kwargs
    )


def started_and_run(workflow_name: str, pages=None, user=None) -> Process:
    process = start(workflow_name, pages, user)
    run_process(str(process.pk))
    process.refresh_from_db()
    return process


def html(response) -> str:
    return response.content.decode()


def page_urls(process: Process) -> list[str]:
    return [
        reverse("dashboard"),
        reverse("workflow-list"),
        reverse("workflow-start", args=["task_demo"]),
        reverse("process-list"),
        reverse("process-detail", args=[process.pk]),
        reverse("process-fragment", args=[process.pk]),
        reverse("schedule-list"),
        reverse("subscription-list"),
        reverse("blueprint-list"),
    ]


# --- login ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_redirects_anonymous_users_to_the_login(client, synced):
    process = start("task_demo", [{"message": "hi"}])
    for url in page_urls(process):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith("/login/"), url
    for name in ("process-resume", "process-abort", "process-delete"):
        response = client.post(reverse(name, args=[process.pk]))
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    response = client.post(reverse("engine-pause"), {"paused": "1"})
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not EngineSettings.objects.filter(paused=True).exists()


@pytest.mark.django_db
def test_login_page_logs_in_and_logout_is_a_post(client, viewer):
    page = client.get("/login/")
    assert page.status_code == 200 and 'name="password"' in html(page)
    bad = client.post("/login/", {"username": viewer.username, "password": "wrong"})
    assert bad.status_code == 200 and "errorbox" in html(bad)
    response = client.post(
        "/login/", {"username": viewer.username, "password": "correct-horse-battery-staple"}
    )
    assert response.status_code == 302 and response["Location"] == "/"
    dashboard = client.get("/")
    assert viewer.username in html(dashboard) and 'action="/logout/"' in html(dashboard)
    assert client.post("/logout/").status_code == 302
    assert client.get("/").status_code == 302


# --- rendering per role ---------------------------------------------------------------------


@pytest.mark.django_db
def test_every_page_renders_for_a_viewer_without_action_buttons(client, viewer, operator):
    failed = started_and_run("wf_api_down", user=operator)
    assert failed.status == ProcessStatus.API_UNAVAILABLE
    client.force_login(viewer)
    for url in page_urls(failed):
        if "start" in url:
            continue
        response = client.get(url)
        assert response.status_code == 200, url
    workflows = html(client.get(reverse("workflow-list")))
    assert "task_demo" in workflows
    assert reverse("workflow-start", args=["task_demo"]) not in workflows
    detail = html(client.get(reverse("process-detail", args=[failed.pk])))
    assert "connection refused" in detail
    for name in ("process-resume", "process-abort", "process-delete"):
        assert reverse(name, args=[failed.pk]) not in detail
    assert "Admin</a>" not in detail  # not staff
    assert "Pause engine" not in html(client.get("/"))


@pytest.mark.django_db
def test_operator_sees_start_retry_and_abort_but_not_delete(client, operator):
    failed = started_and_run("wf_api_down", user=operator)
    client.force_login(operator)
    workflows = html(client.get(reverse("workflow-list")))
    assert reverse("workflow-start", args=["task_demo"]) in workflows
    detail = html(client.get(reverse("process-detail", args=[failed.pk])))
    assert reverse("process-resume", args=[failed.pk]) in detail
    assert reverse("process-abort", args=[failed.pk]) in detail
    assert reverse("process-delete", args=[failed.pk]) not in detail


@pytest.mark.django_db
def test_staff_see_the_admin_link(client, admin_user):
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    assert 'href="/admin/"' in html(client.get("/"))


@pytest.mark.django_db
def test_dashboard_lists_running_failed_and_waiting_for_input(client, operator):
    queued = start("task_demo", [{"message": "queued"}], operator)
    failed = started_and_run("wf_inconsistent", user=operator)
    suspended = started_and_run("wf_input", user=operator)
    assert suspended.status == ProcessStatus.SUSPENDED
    client.force_login(operator)
    page = html(client.get("/"))
    for process in (queued, failed, suspended):
        assert reverse("process-detail", args=[process.pk]) in page


@pytest.mark.django_db
def test_someone_in_no_group_sees_nothing(client, operator, nobody):
    process = start("task_demo", [{"message": "x"}], operator)
    client.force_login(nobody)
    assert reverse("process-detail", args=[process.pk]) not in html(client.get("/"))
    assert reverse("process-detail", args=[process.pk]) not in html(client.get("/processes/"))
    assert "task_demo" not in html(client.get("/workflows/"))
    assert client.get(reverse("process-detail", args=[process.pk])).status_code == 404
    assert client.get(reverse("process-fragment", args=[process.pk])).status_code == 404
    assert client.post(reverse("process-abort", args=[process.pk])).status_code == 404
    assert client.get(reverse("workflow-start", args=["task_demo"])).status_code == 404
    assert client.get(reverse("schedule-list")).status_code == 403


# --- starting workflows ---------------------------------------------------------------------


@pytest.mark.django_db
def test_viewer_may_not_start_a_workflow(client, viewer):
    client.force_login(viewer)
    url = reverse("workflow-start", args=["task_demo"])
    assert client.get(url).status_code == 403
    assert client.post(url, {"message": "hi"}).status_code == 403
    assert not Process.objects.exists()


@pytest.mark.django_db
def test_operator_starts_a_workflow_through_its_form(client, operator):
    client.force_login(operator)
    url = reverse("workflow-start", args=["task_demo"])
    form = html(client.get(url))
    assert 'name="message"' in form and 'name="step_seconds"' in form
    response = client.post(url, {"message": "from the browser", "step_seconds": "0"})
    process = Process.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("process-detail", args=[process.pk])
    assert process.state["message"] == "from the browser"
    assert process.created_by == operator
    detail = client.get(response["Location"])
    assert "Started task_demo" in html(detail)


@pytest.mark.django_db
def test_a_workflow_without_a_form_starts_with_a_confirm_button(client, operator):
    client.force_login(operator)
    url = reverse("workflow-start", args=["wf_input"])
    page = html(client.get(url))
    assert "takes no input" in page and 'type="submit"' in page
    response = client.post(url, {})
    assert response.status_code == 302
    assert Process.objects.get().workflow.name == "wf_input"


@pytest.mark.django_db
def test_invalid_input_shows_field_errors_and_creates_nothing(client, operator):
    client.force_login(operator)
    url = reverse("workflow-start", args=["task_demo"])
    response = client.post(url, {"message": "", "step_seconds": "999"})
    assert response.status_code == 400
    page = html(response)
    assert "This field is required." in page
    assert "less than or equal to 30" in page
    assert not Process.objects.exists()


@pytest.mark.django_db
def test_service_refusal_shows_as_an_error_not_a_500(client, operator):
    client.force_login(operator)
    response = client.post(reverse("workflow-start", args=["wf_refused"]), {})
    assert response.status_code == 400
    assert "refused by its run predicate" in html(response)
    assert not Process.objects.exists()


@pytest.mark.django_db
def test_unknown_workflow_is_a_404(client, operator):
    client.force_login(operator)
    assert client.get("/workflows/no_such_workflow/start/").status_code == 404
    assert client.post("/workflows/" + "x" * 5000 + "/start/", {}).status_code == 404


def two_pages(state=None):
    class First(forms.Form):
        name = forms.CharField(max_length=50)
        password = SecretField(max_length=100)

    class Second(forms.Form):
        size = forms.IntegerField(min_value=1, max_value=10)

    first = yield First
    assert first["password"]
    yield Second


@pytest.mark.django_db
def test_multi_page_form_goes_page_by_page_without_echoing_a_secret(client, operator, monkeypatch):
    from tests import workflows

    monkeypatch.setattr(workflows.wf_conditional, "initial_input_form", two_pages)
    client.force_login(operator)
    url = reverse("workflow-start", args=["wf_conditional"])
    first = client.post(url, {"name": "edge-1", "password": SECRET})
    assert first.status_code == 200
    page = html(first)
    assert 'name="size"' in page and 'name="name"' not in page
    assert SECRET not in page
    token = first.context["paged"].pages_token
    assert token and SECRET not in token
    invalid = client.post(url, {PAGES_FIELD: token, "size": "11"})
    assert invalid.status_code == 400 and "less than or equal to 10" in html(invalid)
    assert SECRET not in html(invalid)
    done = client.post(url, {PAGES_FIELD: token, "size": "3"})
    assert done.status_code == 302
    process = Process.objects.get()
    assert process.state["name"] == "edge-1" and process.state["size"] == 3
    assert "password" not in process.state


@pytest.mark.django_db
def test_earlier_pages_are_refused_to_another_user_or_session_and_expire(
    client, operator, monkeypatch, settings
):
    """The hidden token of a multi-page form carries the first page (a secret too): only the
    user and login session that filled it in may go on with it, and only for a while."""
    from django.test import Client

    from orchestrator import forms as forms_module
    from tests import workflows

    monkeypatch.setattr(workflows.wf_conditional, "initial_input_form", two_pages)
    url = reverse("workflow-start", args=["wf_conditional"])
    client.force_login(operator)

    def first_page() -> str:
        return client.post(url, {"name": "edge-1", "password": SECRET}).context["paged"].pages_token

    token = first_page()
    thief = Client()
    thief.force_login(user_with_role("operator"))
    stolen = thief.post(url, {PAGES_FIELD: token, "size": "3"})
    assert stolen.status_code == 400
    assert "filled in by another user or in another login session" in html(stolen)
    assert 'name="name"' in html(stolen)  # back to the first page, nothing carried over
    client.logout()
    client.force_login(operator)  # the same user, a new login session
    assert "another login session" in html(client.post(url, {PAGES_FIELD: token, "size": "3"}))
    settings.ORCHESTRATOR_FORM_PAGES_MAX_AGE_SECONDS = 600
    token = first_page()
    now = forms_module.time.time()
    monkeypatch.setattr(forms_module.time, "time", lambda: now + 601)
    late = client.post(url, {PAGES_FIELD: token, "size": "3"})
    assert late.status_code == 400 and "This form expired" in html(late)
    assert not Process.objects.exists()
    monkeypatch.setattr(forms_module.time, "time", lambda: now + 599)
    assert client.post(url, {PAGES_FIELD: token, "size": "3"}).status_code == 302
    assert Process.objects.get().state["name"] == "edge-1"


def test_paged_form_replays_pages_and_refuses_a_forged_token():
    paged = PagedForm(two_pages, {}).submit(QueryDict("name=a&password=b"))
    assert not paged.complete and paged.page_number == 2
    forged = PagedForm(two_pages, {}).submit(QueryDict(f"{PAGES_FIELD}=gAAAA-forged"))
    assert forged.page_number == 1 and forged.errors and not forged.complete
    elsewhere = PagedForm(two_pages, {}, purpose="start:other")
    elsewhere.submit({PAGES_FIELD: paged.pages_token})
    assert elsewhere.page_number == 1 and elsewhere.errors


# --- hostile input --------------------------------------------------------------------------


@pytest.mark.django_db
def test_hostile_input_never_gives_a_500(client, operator):
    client.force_login(operator)
    url = reverse("workflow-start", args=["task_demo"])
    huge = "x" * 10_000
    for data in (
        {"message": huge, "step_seconds": huge},
        {"message": "ok", PAGES_FIELD: "not json at all"},
        {"message": "ok", PAGES_FIELD: '[{"message": "a"}, 1, null]'},
        {"message": "ok", PAGES_FIELD: huge},
        {"message": "<script>alert(1)</script>", "step_seconds": "nan"},
        {"message": "\x00\u202e🙂", "step_seconds": "1e309"},
    ):
        response = client.post(url, data)
        assert response.status_code in (200, 302, 400), data
    no_form = client.post(reverse("workflow-start", args=["wf_input"]), {PAGES_FIELD: "x"})
    assert no_form.status_code == 400 and not Process.objects.filter(workflow__name="wf_input")
    assert "<script>alert(1)</script>" not in html(
        client.post(url, {"message": "<script>alert(1)</script>", "step_seconds": "nan"})
    )
    for query, status in (
        ("?status=nonsense&is_task=maybe&page=abc", 400),  # shown as the filters' errors
        ("?page=99999&workflow=" + huge[:3000], 400),  # longer than any parameter
        ("?tag=" + huge[:5000], 400),
        ("?is_task=true&status=failed&page=-1", 200),
    ):
        assert client.get("/processes/" + query).status_code == status, query
    for path in ("/processes/not-a-uuid/", "/processes/123/fragment/", "/processes/../admin/"):
        assert client.get(path).status_code in (404, 302), path
    assert client.get(f"/processes/{uuid.uuid4()}/").status_code == 404
    assert client.post(f"/processes/{uuid.uuid4()}/abort/").status_code == 404


@pytest.mark.django_db
def test_hostile_resume_input_never_gives_a_500(client, operator):
    process = started_and_run("wf_input", user=operator)
    client.force_login(operator)
    url = reverse("process-resume", args=[process.pk])
    for data in (
        {"confirm": "on", "vlan": "9" * 10_000},
        {"confirm": "x" * 10_000, "vlan": "-1"},
        {PAGES_FIELD: "garbage", "vlan": "5"},
        {PAGES_FIELD: "x" * 10_000},
    ):
        assert client.post(url, data).status_code in (200, 302, 400), data
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUSPENDED


# --- processes ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_process_list_filters_and_paginates(client, operator):
    for index in range(30):
        start("task_demo", [{"message": str(index)}], operator, tags=[f"batch:{index % 2}"])
    failed = started_and_run("wf_inconsistent", user=operator)
    client.force_login(operator)
    first = client.get("/processes/")
    assert first.context["page"].paginator.count == 31
    assert len(first.context["processes"]) == views.PAGE_SIZE
    second = client.get("/processes/?page=2")
    assert len(second.context["processes"]) == 31 - views.PAGE_SIZE
    by_status = client.get("/processes/?status=inconsistent_data")
    assert list(by_status.context["processes"]) == [failed]
    by_tag = client.get("/processes/?tag=batch:1")
    assert by_tag.context["page"].paginator.count == 15
    by_workflow = client.get("/processes/?workflow=wf_inconsistent&is_task=true")
    assert list(by_workflow.context["processes"]) == [failed]
    tagged_page2 = html(client.get("/processes/?tag=batch:0&page=1"))
    assert "batch:0" in tagged_page2
    assert ProcessTag.objects.count() == 30


@pytest.mark.django_db
def test_process_page_shows_steps_what_they_changed_and_stops_live_refresh(client, operator):
    process = started_and_run("task_demo", [{"message": "diffs", "step_seconds": 0}], operator)
    assert process.status == ProcessStatus.COMPLETED
    client.force_login(operator)
    page = html(client.get(reverse("process-detail", args=[process.pk])))
    assert "Say hello" in page and "Summarise" in page
    assert "greeting" in page and "Hello: diffs" in page
    assert 'data-live-url="' + reverse("process-fragment", args=[process.pk]) in page
    assert "data-live-stop" in page
    fragment = client.get(reverse("process-fragment", args=[process.pk]))
    assert "no-store" in fragment["Cache-Control"]
    assert "data-live-root" in html(fragment) and "<html" not in html(fragment)


@pytest.mark.django_db
def test_state_keys_named_like_dict_methods_show_on_the_process_page(client, operator):
    """A step that writes `items`, `keys` or `values` into the state (a template's `d.items`
    would read the key, not the method) shows them like any other key."""
    process = started_and_run("task_demo", [{"message": "odd", "step_seconds": 0}], operator)
    odd = {"items": [1, 2], "keys": "k", "values": {"a": 1}}
    ProcessStep.objects.create(process=process, name="Odd keys", status="success",
                               started_at=process.last_modified_at,
                               completed_at=process.last_modified_at,
                               state={**process.state, **odd})
    client.force_login(operator)
    page = client.get(reverse("process-detail", args=[process.pk]))
    assert page.status_code == 200
    for key in odd:
        assert f'<code class="key">{key}</code>' in html(page)


@pytest.mark.django_db
def test_a_queued_process_keeps_polling(client, operator):
    process = start("task_demo", [{"message": "q"}], operator)
    client.force_login(operator)
    fragment = html(client.get(reverse("process-fragment", args=[process.pk])))
    assert "data-live-root" in fragment and "data-live-stop" not in fragment


@pytest.mark.django_db
def test_operator_submits_the_input_of_a_suspended_process(client, operator):
    process = started_and_run("wf_input", user=operator)
    assert process.status == ProcessStatus.SUSPENDED
    client.force_login(operator)
    detail = html(client.get(reverse("process-detail", args=[process.pk])))
    assert 'name="vlan"' in detail and 'name="confirm"' in detail
    url = reverse("process-resume", args=[process.pk])
    invalid = client.post(url, {"confirm": "on", "vlan": "5000"})
    assert invalid.status_code == 400 and "less than or equal to 4094" in html(invalid)
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUSPENDED
    response = client.post(url, {"confirm": "on", "vlan": "42"})
    assert response.status_code == 302
    process.refresh_from_db()
    assert process.status == ProcessStatus.RESUMED
    assert process.state["vlan"] == 42 and process.state["confirm"] is True
    run_process(str(process.pk))
    process.refresh_from_db()
    assert process.status == ProcessStatus.COMPLETED and process.state["vlan_used"] == 42
    page = html(client.get(reverse("process-detail", args=[process.pk])))
    assert operator.username in page  # who submitted the input step


@pytest.mark.django_db
def test_viewer_may_not_resume_abort_or_delete(client, operator, viewer):
    process = started_and_run("wf_input", user=operator)
    client.force_login(viewer)
    detail = html(client.get(reverse("process-detail", args=[process.pk])))
    assert 'name="vlan"' not in detail
    url = reverse("process-resume", args=[process.pk])
    resume = client.post(url, {"confirm": "on", "vlan": "1"})
    assert resume.status_code == 403
    assert client.post(reverse("process-abort", args=[process.pk])).status_code == 403
    assert client.post(reverse("process-delete", args=[process.pk])).status_code == 403
    process.refresh_from_db()
    assert process.status == ProcessStatus.SUSPENDED


@pytest.mark.django_db
def test_retry_abort_and_their_refusals(client, operator):
    failed = started_and_run("wf_api_down", user=operator)
    client.force_login(operator)
    response = client.post(reverse("process-resume", args=[failed.pk]), follow=True)
    assert "Retrying" in html(response)
    failed.refresh_from_db()
    assert failed.status == ProcessStatus.RESUMED
    response = client.post(reverse("process-abort", args=[failed.pk]), follow=True)
    failed.refresh_from_db()
    assert failed.status == ProcessStatus.ABORTED and "Process aborted" in html(response)
    again = client.post(reverse("process-abort", args=[failed.pk]), follow=True)
    assert again.status_code == 200 and "cannot be aborted" in html(again)
    retry = client.post(reverse("process-resume", args=[failed.pk]), follow=True)
    assert retry.status_code == 200 and "cannot be resumed" in html(retry)
    assert client.get(reverse("process-abort", args=[failed.pk])).status_code == 405


@pytest.mark.django_db
def test_admin_deletes_task_runs_but_not_audited_runs(client, admin_user, operator):
    task_run = started_and_run("task_demo", [{"message": "bye"}], operator)
    audited = started_and_run("wf_audited", user=operator)
    client.force_login(admin_user)
    detail = html(client.get(reverse("process-detail", args=[task_run.pk])))
    assert reverse("process-delete", args=[task_run.pk]) in detail
    audited_page = html(client.get(reverse("process-detail", args=[audited.pk])))
    assert reverse("process-delete", args=[audited.pk]) not in audited_page
    refused = client.post(reverse("process-delete", args=[audited.pk]), follow=True)
    assert refused.status_code == 200 and "kept for audit" in html(refused)
    assert Process.objects.filter(pk=audited.pk).exists()
    deleted = client.post(reverse("process-delete", args=[task_run.pk]))
    assert deleted.status_code == 302 and deleted["Location"] == reverse("process-list")
    assert not Process.objects.filter(pk=task_run.pk).exists()
    client.force_login(operator)
    other = started_and_run("task_demo", [{"message": "x"}], operator)
    assert client.post(reverse("process-delete", args=[other.pk])).status_code == 403


@pytest.mark.django_db
def test_the_secret_never_appears_in_any_page(client, operator, admin_user):
    admin_user.is_superuser = admin_user.is_staff = True
    admin_user.save()
    client.force_login(operator)
    start_url = reverse("workflow-start", args=["wf_secret"])
    start_page = html(client.get(start_url))
    assert 'type="password"' in start_page
    invalid = client.post(start_url, {"username": "u" * 60, "password": SECRET})
    assert invalid.status_code == 400 and SECRET not in html(invalid)
    response = client.post(start_url, {"username": "alice", "password": SECRET})
    assert response.status_code == 302
    process = Process.objects.get()
    run_process(str(process.pk))
    process.refresh_from_db()
    assert process.status == ProcessStatus.COMPLETED
    urls = [
        "/", "/processes/", "/processes/?workflow=wf_secret",
        reverse("process-detail", args=[process.pk]),
        reverse("process-fragment", args=[process.pk]),
    ]
    for user in (operator, admin_user):
        client.force_login(user)
        for url in urls:
            page = html(client.get(url))
            assert SECRET not in page, url
            assert process.secrets not in page
    client.force_login(admin_user)
    for url in (
        reverse("admin:orchestrator_process_change", args=[process.pk]),
        reverse("admin:orchestrator_process_changelist"),
    ):
        page = html(client.get(url))
        assert client.get(url).status_code == 200
        assert SECRET not in page and process.secrets not in page


@pytest.mark.django_db
def test_process_page_never_shows_lease_or_callback_fields(client, operator):
    process = start("task_demo", [{"message": "x"}], operator)
    Process.objects.filter(pk=process.pk).update(
        lease_owner="host:1:leaseowner", callback_token="tokendigest123456"
    )
    client.force_login(operator)
    page = html(client.get(reverse("process-detail", args=[process.pk])))
    assert "leaseowner" not in page and "tokendigest123456" not in page


# --- engine and schedules -------------------------------------------------------------------


@pytest.mark.django_db
def test_admin_pauses_and_unpauses_the_engine_from_the_dashboard(client, admin_user, viewer):
    client.force_login(viewer)
    assert client.post(reverse("engine-pause"), {"paused": "1"}).status_code == 403
    assert "Engine paused" not in html(client.get("/"))
    client.force_login(admin_user)
    assert "Pause engine" in html(client.get("/"))
    response = client.post(reverse("engine-pause"), {"paused": "1", "next": "/processes/"})
    assert response.status_code == 302 and response["Location"] == "/processes/"
    assert EngineSettings.objects.get().paused
    client.force_login(viewer)
    for url in ("/", "/processes/", "/workflows/", "/schedules/"):
        assert "banner-paused" in html(client.get(url)), url
    client.force_login(admin_user)
    response = client.post(
        reverse("engine-pause"), {"paused": "0", "next": "https://evil.example/"}
    )
    assert response["Location"] == "/"
    assert not EngineSettings.objects.get().paused


@pytest.mark.django_db
def test_schedules_page_lists_periodic_tasks(client, viewer):
    client.force_login(viewer)
    page = html(client.get("/schedules/"))
    assert "workflow:task_resume_workflows" in page
    assert "*/5 * * * *" in page
    assert "orchestrator.recovery_sweep" in page
    assert "Every 5 minutes" in html(client.get("/workflows/"))  # the catalogue's cron in words


@pytest.mark.django_db
def test_placeholder_pages_render(client, viewer):
    client.force_login(viewer)
    assert client.get("/subscriptions/").status_code == 200
    assert client.get("/blueprints/").status_code == 200


@pytest.mark.django_db
def test_user_with_a_per_object_grant_may_start_that_workflow_only(client, synced):
    from guardian.shortcuts import assign_perm

    from orchestrator.models import Workflow

    user = user_with_role("viewer")
    assign_perm("orchestrator.start_workflow", user, Workflow.objects.get(name="task_demo"))
    client.force_login(user)
    page = html(client.get("/workflows/"))
    assert reverse("workflow-start", args=["task_demo"]) in page
    assert reverse("workflow-start", args=["wf_input"]) not in page
    started = client.post(reverse("workflow-start", args=["task_demo"]), {"message": "m"})
    assert started.status_code == 302
    assert client.get(reverse("workflow-start", args=["wf_input"])).status_code == 403


def test_status_badges_are_escaped_spans():
    from django.template import engines

    badge = engines["django"].from_string("{% load orchestrator_tags %}{% status_badge s %}")
    assert badge.render({"s": "in_progress"}) == (
        '<span class="badge badge-in_progress">in progress</span>'
    )
    assert badge.render({"s": '"><b>x'}) == (
        '<span class="badge badge-&quot;&gt;&lt;b&gt;x">&quot;&gt;&lt;b&gt;x</span>'
    )
