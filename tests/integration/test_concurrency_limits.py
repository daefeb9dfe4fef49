"""Concurrency limits with real workers on the real broker (DESIGN §4.4).

Starts race from threads (each with its own database connection) and workers run in their
own processes, so the slot decisions really happen concurrently, under the workflow row's
lock. Intervals are measured from the step log the workers wrote. PostgreSQL only: on
SQLite a step holds the database's one write lock for as long as it runs, so no two long
steps overlap there whatever the limit says.
"""

from __future__ import annotations

import itertools

import pytest
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator import services
from orchestrator.exceptions import RunCancelled
from orchestrator.models import Process, ProcessStep
from tests import markers
from tests.conftest import wait_for
from tests.helpers import race

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def status_of(process_id) -> str:
    return Process.objects.values_list("status", flat=True).get(pk=process_id)


def release(process_id) -> None:
    """Let a run's "Hold the slot" step end now."""
    markers.marker(f"release-{process_id}").touch()


def interval(process_id) -> tuple:
    """When the run held a worker: its first step's start to its last step's end."""
    times = ProcessStep.objects.filter(process_id=process_id).aggregate(
        start=Min("started_at"), end=Max("completed_at")
    )
    return times["start"], times["end"]


def most_at_once(process_ids) -> int:
    """The largest number of the runs' intervals that overlap at one instant."""
    events = sorted(
        itertools.chain.from_iterable(
            ((start, 1), (end, -1)) for start, end in map(interval, process_ids)
        ),
        key=lambda event: (event[0], event[1]),  # an end before a start at the same instant
    )
    running = peak = 0
    for _, change in events:
        running += change
        peak = max(peak, running)
    return peak


def post(user, workflow: str, hold: float):
    client = APIClient()
    client.force_authenticate(user)
    return client.post("/api/processes/", {"workflow": workflow, "input": [{"hold": hold}]},
                       format="json")


def test_cancel_new_cancels_a_second_run_while_the_first_runs_and_the_api_says_why(
    operator, start_worker
):
    start_worker(pool="threads", concurrency=2)
    first = post(operator, "wf_one_cancel_new", 30).json()
    wait_for(lambda: ProcessStep.objects.filter(process_id=first["id"], name="Start").exists())
    assert status_of(first["id"]) == "running"

    refused = post(operator, "wf_one_cancel_new", 0)
    assert refused.status_code == 409
    body = refused.json()
    assert "wf_one_cancel_new runs at most 1 at a time" in body["detail"]
    assert "1 run is already running or about to run" in body["detail"]
    assert status_of(body["process"]) == "cancelled"

    release(first["id"])
    wait_for(lambda: status_of(first["id"]) == "completed")
    again = post(operator, "wf_one_cancel_new", 0)
    assert again.status_code == 201
    wait_for(lambda: status_of(again.json()["id"]) == "completed")
    assert not ProcessStep.objects.filter(process_id=body["process"]).exists()


def test_cancel_new_under_simultaneous_starts_lets_exactly_one_through(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    for round_number in range(10):
        outcomes = race([
            lambda: services.start_process(workflow_name="wf_one_cancel_new",
                                           input_pages=[{"hold": 30}])
            for _ in range(4)
        ])
        accepted = [o for o in outcomes if isinstance(o, Process)]
        cancelled = [o for o in outcomes if isinstance(o, RunCancelled)]
        assert (len(accepted), len(cancelled)) == (1, 3), f"round {round_number}: {outcomes}"
        release(accepted[0].pk)  # it holds its slot until now, however fast the worker is
        wait_for(lambda run=accepted[0]: status_of(run.pk) == "completed", interval=0.02)
    assert Process.objects.filter(workflow__name="wf_one_cancel_new",
                                  status="cancelled").count() == 30


def test_enqueue_runs_one_after_the_other_in_the_order_they_were_started(
    synced, start_worker
):
    start_worker(pool="threads", concurrency=4)
    first = services.start_process(workflow_name="wf_one_enqueue", input_pages=[{"hold": 30}])
    wait_for(lambda: status_of(first.pk) == "running", interval=0.02)
    later = [
        services.start_process(workflow_name="wf_one_enqueue", input_pages=[{"hold": 0.3}])
        for _ in range(3)
    ]
    # While the first holds the slot the others wait, as `queued` for a slot.
    wait_for(lambda: all(
        Process.objects.filter(pk=p.pk, status="queued", slot_requested_at__isnull=False).exists()
        for p in later
    ), interval=0.02)
    release(first.pk)
    runs = [first, *later]
    wait_for(lambda: all(status_of(p.pk) == "completed" for p in runs), timeout=60)
    intervals = [interval(p.pk) for p in runs]
    for (_, end), (start, _) in itertools.pairwise(intervals):
        assert end <= start, intervals  # in the order started, never overlapping
    assert Process.objects.filter(pk__in=[p.pk for p in runs],
                                  slot_requested_at__isnull=False).count() == 0


def test_a_limit_of_two_holds_across_two_workers_under_simultaneous_starts(
    synced, start_worker
):
    start_worker(pool="threads", concurrency=3)
    start_worker(pool="threads", concurrency=3)
    runs = race([
        lambda: services.start_process(workflow_name="wf_two_enqueue", input_pages=[{"hold": 0.3}])
        for _ in range(8)
    ])
    assert all(isinstance(run, Process) for run in runs), runs
    wait_for(lambda: all(status_of(run.pk) == "completed" for run in runs), timeout=90)
    assert most_at_once([run.pk for run in runs]) == 2


def test_a_cancel_new_workflow_whose_worker_died_accepts_runs_once_the_lease_expired(
    operator, start_worker, settings
):
    settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS = 1
    worker = start_worker(ORCHESTRATOR_LEASE_SECONDS="2")
    first = post(operator, "wf_one_cancel_new", 30).json()
    wait_for(lambda: ProcessStep.objects.filter(process_id=first["id"], name="Start").exists())
    assert post(operator, "wf_one_cancel_new", 0).status_code == 409  # it really runs

    worker.kill()  # SIGKILL in the middle of "Hold the slot": its lease is never released
    wait_for(lambda: not Process.objects.filter(
        pk=first["id"], lease_expires_at__gt=timezone.now()).exists(), timeout=10)
    assert status_of(first["id"]) == "running"  # nobody cleaned up: only the lease expired
    accepted = post(operator, "wf_one_cancel_new", 0)
    assert accepted.status_code == 201, accepted.json()
    second = accepted.json()["id"]

    release(first["id"])
    start_worker(ORCHESTRATOR_LEASE_SECONDS="2")

    def recovered() -> bool:
        services.recover_processes()  # what celery-beat runs every interval
        return status_of(first["id"]) == "completed" and status_of(second) == "completed"

    wait_for(recovered, timeout=60, interval=0.5)
    assert most_at_once([first["id"], second]) == 1
    held = ProcessStep.objects.filter(process_id=first["id"], name="Hold the slot",
                                      status="success")
    assert held.count() == 1
