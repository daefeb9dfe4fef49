"""A browser: an admin pauses and unpauses the engine, then reads who did it, when and from
where on the audit page, and filters it; a viewer sees no Audit link and gets a 403."""

from __future__ import annotations

import os
import re

import pytest

from orchestrator.models import AuditEvent
from tests.e2e.test_browser import log_in
from tests.factories import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_admin_reads_and_filters_the_audit_trail(page, live_server, synced, tmp_path):
    admin = user_with_role("admin")
    log_in(page, live_server.url, admin)
    page.on("dialog", lambda dialog: dialog.accept())  # "Pause the engine?"
    page.click("text=Pause engine")
    page.wait_for_selector(".banner-paused")
    page.click("text=Unpause engine")
    page.wait_for_selector(".messages >> text=Engine running again")

    page.click("nav.mainnav >> text=Audit")
    page.wait_for_url(re.compile(r"/audit/$"))
    assert page.locator("h1").inner_text() == "Audit trail"
    rows = page.locator("table.audit tbody tr")
    # The catalogue's sync (by the system), the login, the pause and the unpause.
    assert rows.count() == AuditEvent.objects.count() == 4
    newest = rows.nth(0).inner_text()
    assert "engine.unpause" in newest and admin.username in newest and "127.0.0.1" in newest
    if os.environ.get("KEEP_SCREENSHOTS"):
        page.screenshot(path=str(tmp_path / "audit.png"), full_page=True)
        print("screenshot:", tmp_path / "audit.png")

    page.fill("input[name=action]", "engine.")
    page.click(".filters button[type=submit]")
    page.wait_for_url(re.compile(r"action=engine\."))
    assert rows.count() == 2
    assert "auth.login" not in page.locator("table.audit").inner_text()
    page.locator("input[name=since]").evaluate("e => e.type = 'text'")  # type what it refuses
    page.fill("input[name=since]", "not a date")
    page.click(".filters button[type=submit]")
    assert "Enter a valid date/time" in page.locator(".filters").inner_text()
    assert page.locator(".empty").inner_text() == "No audit event matches."


def test_a_viewer_has_no_audit_page(page, live_server, synced):
    log_in(page, live_server.url, user_with_role("viewer"))
    assert page.locator("nav.mainnav >> text=Audit").count() == 0
    response = page.goto(live_server.url + "/audit/")
    assert response.status == 403
