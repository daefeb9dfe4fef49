"""Login throttling (issue 7 item 6): the login page, the admin login and POST /api/auth/token/
refuse every login of an account, or from a client address, after LOGIN_FAILURE_LIMIT failures
in a row, for LOGIN_LOCKOUT_MINUTES; on by default, and on in these tests."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from rest_framework.test import APIClient

from tests.factories import PASSWORD, user_with_role

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT


def page_login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/login/", {"username": username, "password": password},
                       REMOTE_ADDR=address)


def api_login(username: str, password: str, address: str = "10.0.0.1"):
    return APIClient().post("/api/auth/token/", {"username": username, "password": password},
                            format="json", REMOTE_ADDR=address)


def admin_login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post("/admin/login/", {"username": username, "password": password,
                                         "next": "/admin/"}, REMOTE_ADDR=address)


def test_throttling_is_on_by_default():
    assert settings.AXES_ENABLED is True
    assert settings.AXES_LOCKOUT_PARAMETERS == ["username", "ip_address"]
    assert LIMIT == 10 and settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60


def test_login_page_locks_an_account_tried_from_many_addresses(client, viewer):
    for attempt in range(LIMIT):
        response = page_login(client, viewer.username, "wrong", f"10.0.1.{attempt}")
        # The form again with its error; the failure that reaches the limit says locked.
        assert response.status_code == (200 if attempt < LIMIT - 1 else 429)
    locked = page_login(client, viewer.username, PASSWORD, "10.0.2.1")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # Another account logs in from that address, the locked one still cannot.
    assert page_login(client, user_with_role(None).username, PASSWORD, "10.0.2.1").status_code \
        == 302
    assert page_login(client, viewer.username, PASSWORD, "10.0.2.2").status_code == 429


def test_login_page_locks_an_address_that_tries_many_accounts(client, viewer):
    for attempt in range(LIMIT):
        page_login(client, f"guess{attempt}", "wrong", "10.0.3.1")
    assert page_login(client, viewer.username, PASSWORD, "10.0.3.1").status_code == 429
    assert page_login(client, viewer.username, PASSWORD, "10.0.3.2").status_code == 302


def test_token_api_is_throttled_alike(viewer):
    for attempt in range(LIMIT):
        response = api_login(viewer.username, "wrong", f"10.0.4.{attempt}")
        assert response.status_code == (400 if attempt < LIMIT - 1 else 429), response.content
    locked = api_login(viewer.username, PASSWORD, "10.0.5.1")
    assert locked.status_code == 429
    assert "token" not in locked.json() and "locked" in locked.json()["detail"].lower()
    assert api_login(user_with_role(None).username, PASSWORD, "10.0.5.1").status_code == 200


def test_admin_login_is_throttled_alike(client, synced):
    staff = user_with_role("admin", is_staff=True)
    for attempt in range(LIMIT):
        response = admin_login(client, staff.username, "wrong", f"10.0.6.{attempt}")
        assert response.status_code == (200 if attempt < LIMIT - 1 else 429)
    assert admin_login(client, staff.username, PASSWORD, "10.0.7.1").status_code == 429
    # The three entry points share one count: the page and the API are locked too.
    assert page_login(client, staff.username, PASSWORD, "10.0.7.2").status_code == 429
    assert api_login(staff.username, PASSWORD, "10.0.7.3").status_code == 429


def test_a_success_clears_the_failures_and_an_admin_can_unlock(client, viewer):
    for _ in range(LIMIT - 1):
        page_login(client, viewer.username, "wrong")
    assert page_login(client, viewer.username, PASSWORD).status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        page_login(client, viewer.username, "wrong")
    assert page_login(client, viewer.username, PASSWORD).status_code == 302  # still not locked
    client.logout()
    for _ in range(LIMIT):
        page_login(client, viewer.username, "wrong", "10.0.8.1")
    assert page_login(client, viewer.username, PASSWORD, "10.0.8.2").status_code == 429
    call_command("axes_reset_username", viewer.username)
    assert page_login(client, viewer.username, PASSWORD, "10.0.8.2").status_code == 302


def test_the_admin_role_may_unlock_in_the_django_admin(client, synced):
    staff = user_with_role("admin", is_staff=True)
    assert staff.has_perm("axes.view_accessattempt")
    assert staff.has_perm("axes.delete_accessattempt")
    assert not user_with_role("operator").has_perm("axes.view_accessattempt")
    for _ in range(LIMIT):
        page_login(client, "victim", "wrong", "10.0.9.1")
    attempt = AccessAttempt.objects.get(username="victim")
    client.force_login(staff)
    page = client.get("/admin/axes/accessattempt/")
    assert page.status_code == 200 and "victim" in page.content.decode()
    client.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert not AccessAttempt.objects.filter(username="victim").exists()


def test_failures_are_counted_by_the_audit_trails_client_address(client, viewer):
    """Behind a proxy (ORCHESTRATOR_PROXY_COUNT=1) the address the proxy saw is counted, not
    what a client writes into X-Forwarded-For itself, nor the proxy's own address."""
    with override_settings(ORCHESTRATOR_PROXY_COUNT=1):
        for attempt in range(LIMIT):
            client.post("/login/", {"username": f"guess{attempt}", "password": "wrong"},
                        REMOTE_ADDR="192.0.2.10",
                        HTTP_X_FORWARDED_FOR=f"6.6.6.{attempt}, 198.51.100.7")
        assert AccessAttempt.objects.filter(ip_address="198.51.100.7").count() == LIMIT
        other_client = {"REMOTE_ADDR": "192.0.2.10", "HTTP_X_FORWARDED_FOR": "198.51.100.8"}
        assert client.post("/login/", {"username": viewer.username, "password": PASSWORD},
                           **other_client).status_code == 302
