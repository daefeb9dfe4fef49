"""docs/deploying.md tried for real: the layout of deploy/multi_machine.py (two gunicorns on one
port, workers per queue with their own node names, one beat, a private Redis) runs a workflow
started over HTTP with an API token, goes on when the worker running it is killed (another
`core` worker finishes it, each step's effect exactly once), and keeps answering on its port
when one web server stops."""

from __future__ import annotations

import json
import shutil
import signal
import urllib.request
from typing import Any

import pytest
from django.db import connection

from deploy.multi_machine import WEB_SERVERS, Layout, free_port
from orchestrator.models import Process, WorkerPing
from orchestrator.schedules import ensure_sweep_schedule
from tests.conftest import wait_for
from tests.factories import PASSWORD, user_with_role

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STEPS = 20  # wf_counted's


def call(url: str, method: str = "GET", body: Any = None, token: str | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our server
        return json.loads(response.read())


@pytest.fixture
def layout(worker_env, synced, settings, tmp_path):
    """The layout on the test database (migrated, its catalogue synced: the release steps
    `deploy/multi_machine.py` runs before starting are left out to save CI time)."""
    if connection.vendor != "postgresql":
        pytest.skip("the several-machines layout runs on PostgreSQL")
    if not shutil.which("redis-server"):
        pytest.skip("no redis-server to start a private broker")
    env = {key: value for key, value in worker_env.items() if key != "CELERY_BROKER_URL"}
    env.update(
        ORCHESTRATOR_LEASE_SECONDS="4",  # a killed worker's run is taken back quickly
        ORCHESTRATOR_SWEEP_INTERVAL_SECONDS="1",
        ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS="2",
    )
    settings.ORCHESTRATOR_SWEEP_INTERVAL_SECONDS = 1
    settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS = 2  # what the API here counts as lost
    ensure_sweep_schedule()  # every second, as the layout's beat reads it
    started = Layout(tmp_path / "layout", free_port(), env=env, release=False)
    try:
        started.start()
        yield started
    finally:
        started.stop_all()


def test_a_run_survives_a_worker_and_a_web_server_stopping(layout):
    user = user_with_role("operator")
    token = call(f"{layout.url}/api/auth/token/", "POST",
                 {"username": user.username, "password": PASSWORD})["token"]
    run = call(f"{layout.url}/api/processes/", "POST",
               {"workflow": "wf_counted", "input": [{"sleep": 0.3}]}, token)

    def running_with_steps():
        process = Process.objects.get(pk=run["id"])
        done = WorkerPing.objects.filter(marker__startswith=f"{run['id']}:").count()
        return process if process.lease_owner and done >= 3 else None

    # Kill (SIGKILL: a machine that died) the core worker holding the run's lease.
    owner_pid = int(wait_for(running_with_steps, timeout=30).lease_owner.split(":")[1])
    holder = next(name for name, child in layout.children.items()
                  if child.process.pid == owner_pid)
    assert holder in ("core-a", "core-b")
    layout.stop(holder, signal.SIGKILL)

    def finished():
        detail = call(f"{layout.url}/api/processes/{run['id']}/", token=token)
        return detail if detail["status"] not in ("created", "queued", "running") else None

    detail = wait_for(finished, timeout=45, interval=0.5)
    assert detail["status"] == "completed", detail.get("failed_reason")
    # Every step's database effect happened exactly once, the killed step's included.
    for index in range(STEPS):
        assert WorkerPing.objects.filter(marker=f"{run['id']}:{index}").count() == 1, index
    # The other core worker finished it; the killed one is shown as lost.
    finisher = Process.objects.get(pk=run["id"])
    assert finisher.lease_owner == ""
    workers = {row["name"].split("@")[0]: row["status"]
               for row in call(f"{layout.url}/api/workers/", token=token)["results"]}
    assert workers[holder] == "lost"
    assert {name: status for name, status in workers.items() if name != holder} == {
        name: "alive" for name in ("core-a", "core-b", "user", "internal") if name != holder
    }

    # Both web servers took requests on the one port; one stops, the port still answers.
    assert all("GET /api/processes/" in layout.log(name).read_text() for name in WEB_SERVERS)
    layout.stop("web-1")
    for _ in range(10):
        assert call(f"{layout.url}/healthz")["status"] == "ok"


def test_a_layout_refuses_without_postgresql(tmp_path):
    layout = Layout(tmp_path, free_port(), env={"DATABASE_URL": "sqlite:///x.sqlite3"})
    with pytest.raises(RuntimeError, match="set DATABASE_URL to a PostgreSQL database"):
        layout.start()
    assert not layout.children

