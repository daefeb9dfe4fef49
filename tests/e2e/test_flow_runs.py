"""A browser starts a flow from its start form with parameters and, with a real worker running
it, watches its task runs (a retried attempt, an async task) and its log appear live."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from orchestrator.models import Process
from tests.e2e.test_browser import log_in
from tests.e2e.test_newcomer import keep
from tests.factories import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
TOKEN = "tok-e2e-5772156"
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "flow-run.png"


def test_operator_starts_a_flow_and_watches_its_task_runs_and_log_live(
    page, live_server, synced, celery_worker, tmp_path
):
    log_in(page, live_server.url, user_with_role("operator"))
    page.goto(live_server.url + "/workflows/flow-deploy/start/")
    page.fill("input[name=site]", "ams1")
    page.fill("input[name=lines]", "2")
    page.fill("input[name=token]", TOKEN)
    page.fill("input[name=pause]", "3")
    keep(page, tmp_path, "flow-start")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    process = Process.objects.get(workflow__name="flow-deploy")
    page.evaluate("window.__notReloaded = true")

    # While the flow sleeps after its first task, the page already shows that task's two
    # attempts and their log lines, the first one's failure too.
    page.wait_for_selector("#run-log >> text=deploying ams1 (attempt 2)", timeout=30_000)
    assert page.locator(".status-card .badge-running").count() == 1
    assert page.locator(".status-card .run-name").inner_text() == "deploy-ams1"  # its template
    runs = page.locator("table.steps").inner_text()
    assert "deploy-ams1" in runs and "attempt 2" in runs
    assert "ams1 refused the connection" in runs
    keep(page, tmp_path, "flow-running")

    page.wait_for_selector(".status-card .badge-completed", timeout=30_000)
    page.wait_for_selector("[data-live-stop]", state="attached")
    assert page.evaluate("window.__notReloaded") is True  # refreshed in place, never reloaded
    assert page.locator("section.card h2", has_text="Task runs").count() == 1
    assert "announce-0" in page.locator("table.steps").inner_text()
    log = page.locator("#run-log").inner_text()
    for text in ("deploying ams1 in 2 lines", "progress line 1", "announcing ams1",
                 "deploying ams1 (attempt 1) with token **redacted**"):
        assert text in log
    assert TOKEN not in page.content()
    keep(page, tmp_path, "flow-done")
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # the picture in docs/flows.md
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    process.refresh_from_db()
    assert process.status == "completed" and process.run_name == "deploy-ams1"
