"""The lockout page: a browser that keeps typing a wrong password is stopped, and told so."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from django.conf import settings

from tests.factories import PASSWORD, user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def submit_login(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


def test_repeated_wrong_passwords_lock_the_login(page, live_server, synced):
    user = user_with_role("viewer")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        submit_login(page, live_server.url, user.username, "not-the-password")
        assert "correct username and password" in page.locator(".errorbox").inner_text()
    submit_login(page, live_server.url, user.username, "not-the-password")
    assert page.locator("h1").inner_text() == "Too many failed logins"
    submit_login(page, live_server.url, user.username, PASSWORD)  # right, but locked
    assert page.locator("h1").inner_text() == "Too many failed logins"
    assert "ask an admin" in page.locator("main").inner_text()
    if os.environ.get("SCREENSHOTS_DIR"):
        page.screenshot(path=str(Path(os.environ["SCREENSHOTS_DIR"]) / "locked_out.png"))
    page.click("text=Back to the login page")
    page.wait_for_url(re.compile(r"/login/"))
