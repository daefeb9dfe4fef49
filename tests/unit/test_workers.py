"""Worker liveness rows: what a heartbeat writes, how its status is told, the page and API."""

from __future__ import annotations

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from orchestrator import selectors, services
from orchestrator.heartbeat import pool_name
from orchestrator.models import WorkerHeartbeat

pytestmark = pytest.mark.django_db


def beat(name: str, pid: int = 100, queues=("core",), **extra) -> WorkerHeartbeat:
    return services.record_worker_heartbeat(
        name=name, hostname="host-a", pid=pid, queues=list(queues), pool="threads",
        concurrency=4, started_at=timezone.now(), **extra,
    )


def seen_ago(name: str, seconds: int) -> None:
    WorkerHeartbeat.objects.filter(name=name).update(
        last_seen_at=timezone.now() - datetime.timedelta(seconds=seconds)
    )


def statuses() -> dict[str, str]:
    return {row.name: row.status for row in selectors.workers()}


def test_status_from_heartbeats(settings):
    settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS = 10
    beat("core@a")
    beat("user@a", queues=["user"])
    beat("gone@a")
    seen_ago("user@a", 29)  # missed two heartbeats: still alive
    seen_ago("gone@a", 31)  # missed three: lost
    beat("clean@a", pid=7)
    services.record_worker_stopped(name="clean@a", pid=7)
    assert statuses() == {
        "clean@a": "stopped", "core@a": "alive", "gone@a": "lost", "user@a": "alive"
    }


def test_a_restarted_worker_takes_its_row_back():
    beat("core@a", pid=1)
    services.record_worker_stopped(name="core@a", pid=1)
    beat("core@a", pid=2, queues=["internal", "core"])
    row = WorkerHeartbeat.objects.get()
    assert (row.pid, row.queues, row.stopped_at) == (2, ["core", "internal"], None)
    # The old process's late goodbye does not mark the new one stopped.
    services.record_worker_stopped(name="core@a", pid=1)
    assert statuses() == {"core@a": "alive"}


def test_old_rows_are_forgotten():
    beat("old@a")
    beat("recent@a")
    seen_ago("old@a", 8 * 24 * 3600)
    seen_ago("recent@a", 6 * 24 * 3600)
    assert services.forget_old_workers() == 1
    assert list(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["recent@a"]


def test_pool_names_are_the_cli_names():
    from celery.concurrency.prefork import TaskPool as Prefork
    from celery.concurrency.thread import TaskPool as Threads

    assert pool_name(Threads) == "threads"
    assert pool_name(Prefork) == "prefork"


def test_api_lists_and_filters(api, viewer):
    beat("core@a", pid=1, queues=["core"])
    beat("internal@b", pid=2, queues=["internal", "user"])
    beat("lost@c", pid=3)
    seen_ago("lost@c", 3600)
    client = api(viewer)
    data = client.get("/api/workers/").json()
    assert [row["name"] for row in data["results"]] == ["core@a", "internal@b", "lost@c"]
    first = data["results"][0]
    assert set(first) == {"name", "status", "queues", "hostname", "pid", "pool", "concurrency",
                          "started_at", "last_seen_at", "stopped_at"}
    alive = client.get("/api/workers/?status=alive").json()["results"]
    assert [row["name"] for row in alive] == ["core@a", "internal@b"]
    on_user = client.get("/api/workers/?queue=user").json()["results"]
    assert [row["name"] for row in on_user] == ["internal@b"]
    bad = client.get("/api/workers/?status=sleeping")
    assert bad.status_code == 400 and "status" in bad.json()


def test_page_shows_workers_and_queues_without_one(viewer, nobody):
    beat("core@a", queues=["core"])
    beat("user@a", queues=["user"])
    seen_ago("user@a", 3600)
    client = Client()
    client.force_login(viewer)
    response = client.get("/workers/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "core@a" in page and "badge-alive" in page and "badge-lost" in page
    # The lost worker's queue and the one nobody serves are named.
    assert "<strong>user, internal</strong>" in page
    assert 'href="/workers/"' in page  # in the navigation
    client.force_login(nobody)
    assert client.get("/workers/").status_code == 403
    assert 'href="/workers/"' not in client.get("/").content.decode()
