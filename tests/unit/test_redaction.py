"""A run's secrets never reach what it stores, shows or logs, not even inside longer text."""

from __future__ import annotations

import io
import json
import logging
from urllib.parse import quote

import pytest

from orchestrator import services
from orchestrator.crypto import encrypt_json
from orchestrator.models import Process, ProcessLog, ProcessStep
from orchestrator.redaction import MARK, Redactor, RedactSecretsFilter, redacting
from tests.helpers import run, start

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t/Pa55 w0rd!"


@pytest.fixture
def console():
    """What the configured console handler (the one workers and web servers log to) writes."""
    handler = next(
        handler for handler in logging.getLogger().handlers
        if any(isinstance(item, RedactSecretsFilter) for item in handler.filters)
    )
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def everything_stored(process: Process) -> str:
    process.refresh_from_db()
    rows = ProcessStep.objects.filter(process=process).values_list("state", flat=True)
    log = ProcessLog.objects.filter(process=process).values_list("message", flat=True)
    return "\n".join(
        [json.dumps(process.state), process.failed_reason, process.traceback,
         process.callback_progress, json.dumps(list(rows)), *log]
    )


def test_a_secret_inside_an_exception_message_traceback_and_nested_state_is_redacted(
    synced, viewer, api
):
    process = run(start("wf_secret_failure", {"username": "admin", "password": SECRET}))
    assert process.status == "failed"
    assert process.failed_reason == f"ValueError: refused admin:{MARK}"
    assert f"refused admin:{MARK}" in process.traceback
    device = process.state["device"]
    assert device["config"] == [f"username admin password {MARK}"]
    assert device["url"] == f"https://admin:{MARK}@device.example/"
    assert device[MARK] == "as a key"
    stored = everything_stored(process)
    for spelling in (SECRET, quote(SECRET, safe=""), json.dumps(SECRET)[1:-1]):
        assert spelling not in stored
    answer = api(viewer).get(f"/api/processes/{process.pk}/").content.decode()
    assert SECRET not in answer and quote(SECRET, safe="") not in answer
    assert MARK in answer


def test_what_a_step_logs_is_redacted(synced, console):
    run(start("wf_secret_failure", {"username": "admin", "password": SECRET}))
    logged = console.getvalue()
    assert f"logging in as admin with {MARK}" in logged
    assert SECRET not in logged


def test_the_page_does_not_show_the_secret(synced, client, operator):
    process = run(start("wf_secret_failure", {"username": "admin", "password": SECRET}))
    client.force_login(operator)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert "refused admin:" in page
    assert SECRET not in page and "Pa55" not in page


def test_callback_body_and_progress_are_redacted(synced):
    process = run(start("wf_callback"))
    Process.objects.filter(pk=process.pk).update(secrets=encrypt_json({"token": SECRET}))
    token = "known"
    from orchestrator.crypto import token_digest

    Process.objects.filter(pk=process.pk).update(callback_token=token_digest(token))
    services.record_callback_progress(
        process_id=process.pk, token=token, message=f"pushing with {SECRET}"
    )
    services.handle_callback(
        process_id=process.pk, token=token, body={"ok": True, "log": [f"auth {SECRET} ok"]}
    )
    stored = everything_stored(process)
    assert SECRET not in stored
    assert process.state["callback_result"] == {"ok": True, "log": [f"auth {MARK} ok"]}
    assert process.callback_progress == f"pushing with {MARK}"


def test_input_typed_into_an_ordinary_field_is_not_stored_either(synced):
    process = start("wf_secret", {"username": f"me {SECRET}", "password": SECRET})
    assert process.state["username"] == f"me {MARK}"


def test_redactor_rules():
    redact = Redactor(["abc", {"nested": ["longer-secret"]}, "", "  ", None])
    assert redact("x abc y") == f"x {MARK} y"
    assert redact("xabcy abc") == f"xabcy {MARK}"  # short secrets only where they stand alone
    assert redact("prefix-longer-secret-suffix") == f"prefix-{MARK}-suffix"
    assert redact(("abc", 3, {"k": ["longer-secret"]})) == (MARK, 3, {"k": [MARK]})
    assert redact(repr("it's longer-secret")) == repr(f"it's {MARK}")
    assert not Redactor([]) and Redactor([]).text("abc") == "abc"


def test_log_records_are_redacted_only_inside_the_context(console):
    logger = logging.getLogger("orchestrator.test")
    with redacting(Redactor([SECRET])):
        try:
            raise RuntimeError(f"failed with {SECRET}")
        except RuntimeError:
            logger.exception("connecting with %s", SECRET)
    logger.warning("outside: %s", "visible")
    logged = console.getvalue()
    assert SECRET not in logged
    assert f"connecting with {MARK}" in logged and f"RuntimeError: failed with {MARK}" in logged
    assert "outside: visible" in logged


def failing_form():
    """A start form whose own code fails with what was typed in its message."""
    from django import forms as django_forms

    from orchestrator.forms import SecretField

    class Login(django_forms.Form):
        username = django_forms.CharField(max_length=50)
        password = SecretField(max_length=100)

    first = yield Login
    raise ValueError(f"cannot reach the switch as {first['username']}:{first['password']}")


def test_a_start_forms_failure_shows_and_logs_no_typed_secret(
    synced, client, operator, monkeypatch, console
):
    from tests import workflows

    monkeypatch.setattr(workflows.wf_conditional, "initial_input_form", failing_form)
    client.force_login(operator)
    response = client.post(
        "/workflows/wf_conditional/start/", {"username": "admin", "password": SECRET}, follow=True
    )
    page = response.content.decode()
    assert "The input form of wf_conditional failed" in page
    assert SECRET not in page and "Pa55" not in page
    assert "input form of wf_conditional failed" in console.getvalue()
    assert SECRET not in console.getvalue()


# --- the callback token: handed to the step's code, stored and shown nowhere ----------------


@pytest.fixture
def handed_routes(monkeypatch) -> list[str]:
    """The callback routes the careless callback steps of tests.workflows were handed."""
    from tests import workflows

    routes: list[str] = []
    monkeypatch.setattr(workflows, "handed_routes", routes)
    return routes


def shown(process: Process, user, client, api) -> str:
    """Everything a user sees of the run: the API detail, the page and its live fragment."""
    client.force_login(user)
    return "\n".join([
        api(user).get(f"/api/processes/{process.pk}/").content.decode(),
        client.get(f"/processes/{process.pk}/").content.decode(),
        client.get(f"/processes/{process.pk}/fragment/").content.decode(),
    ])


def test_a_callback_token_is_redacted_under_whatever_key_a_step_keeps_its_route(
    synced, operator, client, api, console, handed_routes
):
    process = run(start("wf_callback_copied"))
    assert process.status == "awaiting_callback"
    [route] = handed_routes  # the step's code got the real route, for the external system
    token = route.split("/")[-2]
    assert len(token) >= 32 and route == f"/api/processes/{process.pk}/callback/{token}/"
    redacted_route = f"/api/processes/{process.pk}/callback/{MARK}/"
    assert process.state["my_url"] == redacted_route
    assert process.state["job"] == {"notify": [f"https://orchestrator.example{redacted_route}"]}
    assert "callback_route" not in process.state
    [logged] = ProcessLog.objects.filter(process=process).values_list("message", flat=True)
    assert logged == f"asked the job to call back at {redacted_route}"
    assert token not in everything_stored(process)
    assert token not in shown(process, operator, client, api)
    assert f"call back at {redacted_route}" in console.getvalue()
    assert token not in console.getvalue()

    # The external system calls the route; echoing it back stores no token either.
    services.record_callback_progress(process_id=process.pk, token=token, message=f"at {route}")
    services.handle_callback(process_id=process.pk, token=token, body={"ok": True, "me": route})
    process = run(process)
    assert process.status == "completed"
    assert process.state["callback_result"] == {"ok": True, "me": redacted_route}
    assert token not in everything_stored(process)
    assert token not in shown(process, operator, client, api)


def test_a_callback_token_in_a_failure_message_and_traceback_is_redacted(
    synced, operator, client, api, handed_routes
):
    process = run(start("wf_callback_copied_failure"))
    assert process.status == "failed"
    [route] = handed_routes
    token = route.split("/")[-2]
    assert process.failed_reason == (
        f"ValueError: the job refused to call back at /api/processes/{process.pk}/callback/{MARK}/"
    )
    assert token not in everything_stored(process)
    assert token not in shown(process, operator, client, api)


def test_the_run_log_redacts_a_callback_token_itself(synced, handed_routes, monkeypatch):
    """Not only because the console handler's filter happened to redact the record first."""
    for handler in logging.getLogger().handlers:
        kept = [item for item in handler.filters if not isinstance(item, RedactSecretsFilter)]
        monkeypatch.setattr(handler, "filters", kept)
    process = run(start("wf_callback_copied"))
    [route] = handed_routes
    [logged] = ProcessLog.objects.filter(process=process).values_list("message", flat=True)
    assert logged == f"asked the job to call back at /api/processes/{process.pk}/callback/{MARK}/"
    assert route.split("/")[-2] not in logged
