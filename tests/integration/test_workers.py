"""Worker liveness from the workers' own heartbeats: a real worker appears alive on its
queues, and once stopped it is shown as stopped (a clean shutdown) or lost (killed)."""

from __future__ import annotations

import pytest

from tests.conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.smoke,
    pytest.mark.django_db(transaction=True),
]


def workers_by_pid(client) -> dict[int, dict]:
    response = client.get("/api/workers/")
    assert response.status_code == 200, response.content
    return {row["pid"]: row for row in response.json()["results"]}


def test_a_worker_appears_then_shows_as_gone(settings, api, viewer, start_worker):
    settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS = 1
    client = api(viewer)
    killed = start_worker(ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS="1")
    stopped = start_worker(ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS="1")
    pids = (killed.proc.pid, stopped.proc.pid)

    def both_alive():
        rows = workers_by_pid(client)
        return all(rows.get(pid, {}).get("status") == "alive" for pid in pids) and rows

    rows = wait_for(both_alive, timeout=60, interval=0.5)
    row = rows[killed.proc.pid]
    assert sorted(row["queues"]) == ["core", "internal", "user"]
    assert row["pool"] == "solo" and row["stopped_at"] is None
    assert row["name"].startswith("test-")
    first_seen = row["last_seen_at"]
    # It keeps beating while it runs.
    wait_for(lambda: workers_by_pid(client)[killed.proc.pid]["last_seen_at"] != first_seen,
             timeout=10, interval=0.5)

    killed.kill()  # SIGKILL: nothing gets to say goodbye
    stopped.stop()  # SIGTERM: a warm shutdown records it
    assert workers_by_pid(client)[stopped.proc.pid]["status"] == "stopped"
    lost = wait_for(lambda: workers_by_pid(client)[killed.proc.pid]["status"] == "lost",
                    timeout=15, interval=0.5)
    assert lost
    alive_now = client.get("/api/workers/?status=alive").json()["results"]
    assert not {row["pid"] for row in alive_now} & set(pids)
