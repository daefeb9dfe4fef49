"""A real round trip: the test (the web side) sends, a real worker on the real broker runs.

Runs on whatever the environment configures: the embedded defaults (an SQLite file and
the `filesystem://` broker) or DATABASE_URL + CELERY_BROKER_URL (PostgreSQL, Redis or
RabbitMQ). CI runs it both ways.
"""

from __future__ import annotations

import uuid

import pytest

from orchestrator.models import Process, WorkerPing
from tests.conftest import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.smoke,
    pytest.mark.django_db(transaction=True),
]


def test_a_task_sent_from_the_web_side_is_run_by_the_worker(celery_worker):
    from orchestrator.tasks import ping_task

    marker = f"ping-{uuid.uuid4().hex[:12]}"
    ping_task.delay(marker)
    wait_for(lambda: WorkerPing.objects.filter(marker=marker).exists(), timeout=60)
    assert celery_worker.proc.poll() is None, "the worker died"


def test_the_engine_runs_a_workflow_to_completion_on_the_worker(synced, celery_worker):
    from orchestrator import services

    process = services.start_process(
        workflow_name="task_demo", input_pages=[{"message": "hi", "step_seconds": 0}]
    )

    def finished() -> Process | None:
        current = Process.objects.get(pk=process.pk)
        return current if current.status not in ("created", "queued", "running") else None

    done = wait_for(finished, timeout=60)
    assert done.status == "completed", (done.status, done.failed_reason)
    assert done.state["summary"] == "Hello: hi after 0.0s of work"
    assert [step.name for step in done.steps.all()] == [
        "Start",
        "Say hello",
        "Do some work",
        "Summarise",
        "Done",
    ]


def test_a_batch_start_s_runs_all_complete_on_the_worker(operator, api, celery_worker):
    runs = [{"workflow": "wf_counted", "input": [{"steps": 3}], "tags": [f"batch:{index}"]}
            for index in range(12)]
    response = api(operator).post("/api/processes/batch/", {"runs": runs}, format="json")
    assert response.status_code == 201, response.content
    ids = [run["id"] for run in response.json()["runs"]]
    batch = Process.objects.filter(pk__in=ids)
    wait_for(lambda: not batch.exclude(status="completed").exists(), timeout=120)
    assert batch.count() == 12
    assert all(process.steps.count() == len(process.planned_steps) for process in batch)
    assert not batch.exclude(lease_owner="").exists()
