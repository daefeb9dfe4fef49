"""A browser drives the real pages: log in, start a task through its form, watch it run."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from orchestrator.models import Process, ProcessStatus
from orchestrator.runner import run_process
from tests.factories import PASSWORD, user_with_role

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "screenshot.png"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def log_in(page, base_url: str, user) -> None:
    page.goto(base_url + "/")
    page.wait_for_url(re.compile(r"/login/"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base_url + "/")


def test_operator_starts_a_task_and_watches_it_complete_live(page, live_server, synced, enqueued):
    operator = user_with_role("operator")
    log_in(page, live_server.url, operator)
    assert page.locator("h1").inner_text() == "Dashboard"
    assert "Engine running" in page.locator(".topbar").inner_text()

    page.click("nav.mainnav >> text=Workflows")
    page.click("a[href='/workflows/task_demo/start/']")
    page.fill("input[name=message]", "from the browser")
    page.fill("input[name=step_seconds]", "0.2")
    page.click("form.stacked button[type=submit]")

    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    process = Process.objects.get()
    assert page.url.endswith(f"/processes/{process.pk}/")
    assert enqueued == [str(process.pk)]
    assert "Started task_demo" in page.locator(".messages").inner_text()
    assert page.locator(".status-card .badge").inner_text() == "created"

    # The page polls its fragment: once a "worker" (here: this thread) runs the process,
    # the status and steps appear without a reload.
    page.evaluate("window.__notReloaded = true")
    run_process(str(process.pk))
    process.refresh_from_db()
    assert process.status == ProcessStatus.COMPLETED
    page.wait_for_selector(".status-card .badge-completed", timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True
    steps = page.locator("table.steps").inner_text()
    assert "Say hello" in steps and "Summarise" in steps
    assert "Hello: from the browser" in steps
    assert page.locator("[data-live-stop]").count() == 1

    # UPDATE_SCREENSHOT=1 refreshes the README's picture; other runs leave docs/ alone.
    if os.environ.get("UPDATE_SCREENSHOT") == "1":
        page.screenshot(path=str(SCREENSHOT), full_page=True)


def test_operator_fills_the_input_form_of_a_suspended_process(page, live_server, synced, enqueued):
    operator = user_with_role("operator")
    log_in(page, live_server.url, operator)
    page.goto(live_server.url + "/workflows/wf_input/start/")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    process = Process.objects.get()
    run_process(str(process.pk))
    # The input form arrives with the live fragment once the process waits for input.
    page.wait_for_selector(".input-card input[name=vlan]", timeout=10_000)

    page.fill("input[name=vlan]", "5000")
    page.check("input[name=confirm]")
    page.click(".input-card button[type=submit]")
    assert "less than or equal to 4094" in page.locator(".input-card").inner_text()

    page.fill("input[name=vlan]", "42")
    page.check("input[name=confirm]")
    page.click(".input-card button[type=submit]")
    page.wait_for_selector(".messages >> text=Input submitted")
    process.refresh_from_db()
    assert process.status == ProcessStatus.RESUMED and process.state["vlan"] == 42


def test_viewer_sees_no_start_button_and_a_paused_engine_banner(page, live_server, synced):
    from orchestrator import services

    services.set_engine_paused(paused=True, user=None)
    viewer = user_with_role("viewer")
    log_in(page, live_server.url, viewer)
    assert page.locator(".banner-paused").is_visible()
    page.click("nav.mainnav >> text=Workflows")
    assert page.locator("a[href='/workflows/task_demo/start/']").count() == 0
    page.click("form[action='/logout/'] button")
    page.wait_for_url(re.compile(r"/login/"))
