"""Pages under the Content-Security-Policy still work in Chromium: the project's pages, the
admin and the API docs (the `page` fixture fails a test on any CSP refusal)."""

from __future__ import annotations

import os

import pytest

from orchestrator import services
from tests.factories import PASSWORD, user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("CSP_SCREENSHOTS")  # a folder: keep screenshots to look at


def shoot(page, name: str) -> None:
    if SHOTS:
        page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_pages_admin_and_api_docs_work_under_the_policy(page, live_server, synced, enqueued):
    admin = user_with_role("admin", is_staff=True, is_superuser=True)
    process = services.start_process(workflow_name="task_demo", input_pages=[{"message": "x"}])
    response = page.goto(live_server.url + "/login/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.fill("input[name=username]", admin.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(live_server.url + "/")
    for path in ("/", "/workflows/", "/workflows/task_demo/start/", "/processes/",
                 f"/processes/{process.pk}/", "/schedules/"):
        response = page.goto(live_server.url + path)
        assert response.status == 200, path
        assert "no-store" in response.headers["cache-control"], path
        assert "'unsafe-inline'" not in response.headers["content-security-policy"], path
    shoot(page, "process")
    page.goto(live_server.url + "/admin/")
    page.click("a[href='/admin/orchestrator/process/']")
    page.wait_for_selector("#result_list")
    shoot(page, "admin-list")
    page.goto(live_server.url + f"/admin/orchestrator/process/{process.pk}/change/")
    assert str(process.pk) in page.locator("#content").inner_text()
    shoot(page, "admin")
    page.goto(live_server.url + "/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert "Infrastructure Orchestrator API" in page.locator(".swagger-ui .info").inner_text()
    shoot(page, "api-docs")
