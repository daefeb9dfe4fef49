"""GET /healthz: no login, a minimal body naming each part, 503 naming the part that is down."""

from __future__ import annotations

import logging
import time

import pytest
from django.db import connection
from django.test import Client

from orchestrator import health
from tests.helpers import closed_port

pytestmark = pytest.mark.django_db


def get_healthz():
    return Client().get("/healthz")


def test_all_up_answers_200_without_login():
    response = get_healthz()
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "web": "ok", "database": "ok", "broker": "ok"}
    assert "no-store" in response["Cache-Control"]  # a proxy never answers from a cache


def test_head_is_answered_and_post_is_not():
    assert Client().head("/healthz").status_code == 200
    assert Client().post("/healthz").status_code == 405


def test_broker_down_is_503_naming_the_broker(settings, caplog):
    port = closed_port()
    settings.CELERY_BROKER_URL = f"redis://user:hunter2@127.0.0.1:{port}/0"
    with caplog.at_level(logging.WARNING, logger="orchestrator.views"):
        response = get_healthz()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable", "web": "ok", "database": "ok", "broker": "down"
    }
    # The answer names the part only; the log says where and why, without the password.
    assert str(port).encode() not in response.content
    assert f"cannot reach broker at 127.0.0.1:{port}: connection refused" in caplog.text
    assert "hunter2" not in caplog.text


def point_database_at_nothing(monkeypatch, tmp_path) -> str:
    """Make new connections to the default database fail; the test's own stays open."""
    if connection.vendor == "postgresql":
        port = closed_port()
        monkeypatch.setitem(connection.settings_dict, "HOST", "127.0.0.1")
        monkeypatch.setitem(connection.settings_dict, "PORT", str(port))
        return f"127.0.0.1:{port}"
    missing = tmp_path / "no-such-folder" / "db.sqlite3"
    monkeypatch.setitem(connection.settings_dict, "NAME", str(missing))
    return str(missing)


def test_database_down_is_503_naming_the_database(monkeypatch, tmp_path, caplog):
    where = point_database_at_nothing(monkeypatch, tmp_path)
    with caplog.at_level(logging.WARNING, logger="orchestrator.views"):
        response = get_healthz()
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable", "web": "ok", "database": "down", "broker": "ok"
    }
    assert f"cannot reach database at {where}" in caplog.text
    # The probe used a connection of its own: the test's connection still works.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def test_probe_gives_up_within_its_timeout(monkeypatch):
    """An address that never answers (no route, or a dropped SYN) costs at most the timeout."""
    if connection.vendor != "postgresql":
        pytest.skip("the connect timeout applies to a networked database")
    monkeypatch.setitem(connection.settings_dict, "HOST", "10.255.255.1")
    started = time.monotonic()
    line = health.check_database(timeout=1)
    assert line and line.startswith("cannot reach database at 10.255.255.1")
    assert time.monotonic() - started < 2.5


def test_probe_lists_each_part():
    assert health.probe() == {"web": None, "database": None, "broker": None}
