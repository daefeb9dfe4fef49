"""API tokens are stored as digests: `POST /api/auth/token/` issues one, shown once, and
`Authorization: Token ...` works with it; a lapsed, revoked or inactive user's token is a 401."""

from __future__ import annotations

import datetime
import hashlib

import pytest
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.models import ApiToken
from orchestrator.tokens import clean_up_tokens
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def issue(user, **options) -> str:
    response = APIClient().post(
        "/api/auth/token/", {"username": user.username, "password": PASSWORD}, **options
    )
    assert response.status_code == 200, response.content
    return response.json()["token"]


def status_with(token: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client.get("/api/processes/").status_code


def test_only_the_digest_of_an_issued_token_is_stored(operator):
    token = issue(operator, format="json")
    assert len(token) == 40
    row = ApiToken.objects.get()
    assert row.user == operator and row.prefix == token[:8]
    assert row.digest == hashlib.sha256(token.encode()).hexdigest()
    with connection.cursor() as cursor:  # nowhere in the table, in any column
        cursor.execute("SELECT * FROM orchestrator_apitoken")
        assert token not in repr(cursor.fetchall())
    assert status_with(token) == 200
    row.refresh_from_db()
    assert row.last_used_at is not None


def test_each_call_issues_a_new_token_and_the_old_ones_keep_working(operator):
    first, second = issue(operator, format="json"), issue(operator)  # JSON or a form
    assert first != second
    assert status_with(first) == status_with(second) == 200


def test_wrong_credentials_issue_nothing(operator):
    response = APIClient().post(
        "/api/auth/token/", {"username": operator.username, "password": "wrong"}, format="json"
    )
    assert response.status_code == 400 and "non_field_errors" in response.json()
    missing = APIClient().post("/api/auth/token/", {}, format="json")
    assert missing.status_code == 400 and "username" in missing.json()
    assert not ApiToken.objects.exists()


def test_revoked_lapsed_and_inactive_users_tokens_are_refused(operator, settings):
    token = issue(operator, format="json")
    settings.ORCHESTRATOR_API_TOKEN_IDLE_DAYS = 90
    old = timezone.now() - datetime.timedelta(days=91)
    ApiToken.objects.update(created_at=old, last_used_at=old)
    assert status_with(token) == 401
    assert clean_up_tokens() == 1 and not ApiToken.objects.exists()
    token = issue(operator, format="json")
    operator.is_active = False
    operator.save()
    assert status_with(token) == 401
    operator.is_active = True
    operator.save()
    assert status_with(token) == 200
    ApiToken.objects.all().delete()  # what the admin's delete does: revoked
    assert status_with(token) == 401


def test_a_token_in_use_does_not_lapse(operator, settings):
    settings.ORCHESTRATOR_API_TOKEN_IDLE_DAYS = 90
    token = issue(operator, format="json")
    ApiToken.objects.update(
        created_at=timezone.now() - datetime.timedelta(days=400),
        last_used_at=timezone.now() - datetime.timedelta(days=2),
    )
    assert clean_up_tokens() == 0 and status_with(token) == 200
    settings.ORCHESTRATOR_API_TOKEN_IDLE_DAYS = 0  # never lapse
    ApiToken.objects.update(last_used_at=timezone.now() - datetime.timedelta(days=4000))
    assert clean_up_tokens() == 0 and status_with(token) == 200


def test_the_admin_lists_tokens_without_their_digest(client, admin_user, operator):
    issue(operator, format="json")
    row = ApiToken.objects.get()
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    listing = client.get("/admin/orchestrator/apitoken/").content.decode()
    assert row.prefix in listing and row.digest not in listing
    assert client.get("/admin/orchestrator/apitoken/add/").status_code == 403


@pytest.mark.django_db(transaction=True)
def test_tokens_issued_before_in_clear_are_hashed_by_the_migration(operator):
    """DRF's clear-text `authtoken_token` rows become digests and the table goes."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.migrate([("orchestrator", "0009_catalogue_concurrency")])
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "user_id integer NOT NULL, created timestamp with time zone NOT NULL)"
            if connection.vendor == "postgresql" else
            "CREATE TABLE authtoken_token (key varchar(40) PRIMARY KEY, "
            "user_id integer NOT NULL, created datetime NOT NULL)"
        )
        cursor.execute(
            "INSERT INTO authtoken_token VALUES (%s, %s, %s)",
            ["0123456789abcdef0123456789abcdef01234567", operator.pk, timezone.now()],
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    assert "authtoken_token" not in connection.introspection.table_names()
    row = ApiToken.objects.get()
    assert row.user_id == operator.pk and row.prefix == "01234567"
    assert status_with("0123456789abcdef0123456789abcdef01234567") == 200
