"""The engine's one extension point (orchestrator.extensions) and the rule that the engine
imports no domain app: the domain apps plug in, the arrows never run back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from orchestrator import extensions, services
from orchestrator.exceptions import Conflict
from orchestrator.extensions import ProcessExtension, Reservation, StartPage, StartTarget, Touched
from orchestrator.models import Process
from tests.conftest import ROOT
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


def test_the_engine_imports_no_domain_app_anywhere_not_even_inside_functions():
    """Only orchestrator/workflows/utils.py (orchestrator-core's import path) may."""
    allowed = {ROOT / "orchestrator" / "workflows" / "utils.py"}
    offenders = []
    for path in sorted((ROOT / "orchestrator").rglob("*.py")):
        if "migrations" in path.parts or path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                if name.split(".")[0] in ("subscriptions", "blueprints"):
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert offenders == []


class Recorder(ProcessExtension):
    """A test extension owning the start target `ticket`."""

    start_targets = ("ticket",)

    def __init__(self) -> None:
        self.stopped: list[tuple[str, str, bool]] = []
        self.linked: list[str] = []

    def resolve_targets(self, user, targets):
        return targets

    def form_state(self, targets):
        return {"ticket_seen_by_form": targets.get("ticket")} if targets.get("ticket") else {}

    def reserve(self, *, workflow, targets, pages, user=None):
        if targets.get("ticket") == "closed":
            raise Conflict("ticket closed is closed")
        if not targets.get("ticket"):
            return None
        return Reservation(
            state={"ticket": targets["ticket"]},
            secrets={"ticket_token": "s3cr3t-token-value"},
            link=lambda process: self.linked.append(str(process.pk)),
        )

    def start_page(self, user, workflow, targets):
        if not targets.get("ticket"):
            return StartPage()
        return StartPage(targets=[StartTarget(
            name="ticket", value=targets["ticket"], text="For ticket", label=targets["ticket"],
        )])

    def touched(self, user, process):
        ticket = process.state.get("ticket")
        return [Touched(kind="ticket", heading="Tickets", id=ticket, label=f"Ticket {ticket}",
                        url=f"/tickets/{ticket}/")] if ticket else []

    def process_stopped(self, process, status):
        from django.db import connection

        self.stopped.append((str(process.pk), status, connection.in_atomic_block))


@pytest.fixture
def recorder(monkeypatch):
    monkeypatch.setattr(extensions, "_extensions", list(extensions._extensions))
    return extensions.register(Recorder())


def test_an_extension_prepares_a_start_vetoes_one_and_is_told_when_it_stops(synced, recorder):
    with pytest.raises(Conflict, match="ticket closed is closed"):
        start("task_demo", {"message": "x"}, ticket="closed")
    assert not Process.objects.exists()  # a veto stores nothing

    process = start("task_demo", {"message": "hi"}, ticket="T-1")
    assert recorder.linked == [str(process.pk)]
    assert process.state["ticket"] == "T-1"
    assert "s3cr3t-token-value" not in str(Process.objects.values().get(pk=process.pk))
    assert run(process).status == "completed"
    assert recorder.stopped == [(str(process.pk), "completed", True)]

    failing = run(start("wf_inconsistent"))
    aborted = start("wf_input")
    services.abort_process(process=aborted)
    assert (str(failing.pk), "inconsistent_data", True) in recorder.stopped
    assert (str(aborted.pk), "aborted", True) in recorder.stopped


def test_unknown_start_targets_are_refused():
    with pytest.raises(TypeError, match="unknown start target"):
        extensions.split_targets({"nonsense": 1})


def test_touched_objects_show_on_the_process_page_and_in_the_api(
    synced, recorder, operator, client, api
):
    process = run(start("task_demo", {"message": "hi"}, ticket="T-7", user=operator))
    body = api(operator).get(f"/api/processes/{process.pk}/").json()
    assert body["touched"] == [{"kind": "ticket", "id": "T-7", "label": "Ticket T-7",
                                "url": "/tickets/T-7/", "status": "", "note": ""}]
    assert body["subscriptions"] == []
    client.force_login(operator)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert "<dt>Tickets</dt>" in page and 'href="/tickets/T-7/"' in page


def test_a_start_page_carries_the_targets_of_an_extension(synced, recorder, operator, client):
    client.force_login(operator)
    page = client.get("/workflows/task_demo/start/?ticket=T-9").content.decode()
    assert "For ticket" in page and 'name="__ticket" value="T-9"' in page
    response = client.post("/workflows/task_demo/start/", {"__ticket": "T-9", "message": "m"})
    assert response.status_code == 302
    assert Process.objects.get().state["ticket"] == "T-9"


def test_an_extension_that_fails_to_note_a_failure_does_not_lose_the_failure(
    synced, recorder, monkeypatch
):
    def broken(process, status):
        raise RuntimeError("extension bug")

    monkeypatch.setattr(recorder, "process_stopped", broken)
    process = run(start("wf_inconsistent"))
    assert process.status == "inconsistent_data"


def test_the_domain_apps_register_their_extensions():
    names = extensions.start_target_names()
    assert "subscription" in names and "product" in names
    assert Path(ROOT / "subscriptions" / "extension.py").exists()
