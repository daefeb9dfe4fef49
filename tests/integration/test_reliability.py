"""Nothing lost (DESIGN §4.3): real workers on the real broker, killed, duplicated, paused.

These tests start their own workers (no module-wide worker competes with them) and drive
the recovery sweep themselves instead of waiting for celery-beat's interval.
"""

from __future__ import annotations

import contextlib
import datetime
import random
import subprocess
import sys
import threading
import time

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from orchestrator import services
from orchestrator.models import Process, ProcessStep, WorkerPing
from orchestrator.runner import ProcessRun, RunWatch, claim
from orchestrator.tasks import run_process_task
from tests.conftest import ROOT, kill_lease_holder, wait_for
from tests.helpers import fixed, run

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LEASE = "2"


def status_of(process: Process) -> str:
    return Process.objects.values_list("status", flat=True).get(pk=process.pk)


def markers(process: Process) -> list[str]:
    return list(
        WorkerPing.objects.filter(marker__startswith=f"{process.pk}:").values_list(
            "marker", flat=True
        )
    )


def assert_each_step_once(process: Process, count: int = 20) -> None:
    found = markers(process)
    assert sorted(found) == sorted(f"{process.pk}:{index}" for index in range(count))
    successes = ProcessStep.objects.filter(process=process, status="success")
    names = [name for name in successes.values_list("name", flat=True) if name.startswith("Step")]
    assert len(names) == len(set(names)) == count


@pytest.mark.parametrize("workflow", ["wf_session_lost", "flow-session-lost"])
def test_a_step_whose_database_session_dies_is_given_back_not_failed(synced, monkeypatch,
                                                                      workflow):
    """Its session terminated under it (pg_terminate_backend, as the chaos test does): the
    step (or a flow's task run) rolled back and is no fault of the process, which is
    released and enqueued again; the next delivery runs it, and its effect happens once."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL session")
    process = services.start_process(workflow_name=workflow, input_pages=[{}])
    sent: list[str] = []
    monkeypatch.setattr(services, "enqueue_process",
                        lambda process, countdown=None: sent.append(str(process.pk)))
    run(process)
    assert (process.status, process.failed_reason, process.lease_owner) == ("running", "", "")
    assert sent == [str(process.pk)]
    assert markers(process) == []
    run(process)
    assert process.status == "completed"
    assert markers(process) == [f"{process.pk}:session"]


def test_the_lease_is_renewed_again_once_the_watchers_session_died(synced):
    """The thread watching a long step renews its lease; after its database session was
    terminated, a renewal fails but the next one opens a new session (else the lease would
    run out under a step that is still running, and another worker would run it too)."""
    if connection.vendor != "postgresql":
        pytest.skip("terminates a PostgreSQL session")
    process = services.start_process(workflow_name="wf_counted", input_pages=[{}])
    assert claim(str(process.pk), "watcher-test")
    expired = timezone.now() - datetime.timedelta(seconds=1)
    Process.objects.filter(pk=process.pk).update(lease_expires_at=expired)
    run_watch = RunWatch()
    run_watch.run = ProcessRun(Process.objects.get(pk=process.pk), "watcher-test", run_watch)

    def watcher() -> None:
        try:
            with connection.cursor() as cursor, contextlib.suppress(OperationalError):
                cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            run_watch.renew_lease()  # on the dead session: fails, and is logged
            run_watch.renew_lease()
        finally:
            connection.close()

    thread = threading.Thread(target=watcher)
    thread.start()
    thread.join(timeout=30)
    renewed = Process.objects.values_list("lease_expires_at", flat=True).get(pk=process.pk)
    assert renewed > timezone.now()


def test_failed_step_resumes_from_where_it_failed_with_a_real_worker(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    process = services.start_process(workflow_name="wf_counted", input_pages=[{"fail_at": 7}])
    wait_for(lambda: status_of(process) == "failed")
    process.refresh_from_db()
    assert "step 7 fails on purpose" in process.failed_reason
    assert "Traceback" in process.traceback
    assert len(markers(process)) == 7
    with fixed(process):
        services.resume_process(process=process)
        wait_for(lambda: status_of(process) == "completed")
    assert_each_step_once(process)


def test_duplicate_deliveries_run_no_step_twice(synced, start_worker):
    start_worker(pool="threads", concurrency=4)
    process = services.start_process(
        workflow_name="wf_counted", input_pages=[{"sleep": 0.05}]
    )
    for _ in range(5):
        run_process_task.delay(str(process.pk))
    wait_for(lambda: status_of(process) == "completed")
    for _ in range(3):
        run_process_task.delay(str(process.pk))
    time.sleep(1)
    assert_each_step_once(process)
    assert ProcessStep.objects.filter(process=process).count() == 22  # 20 + Start + Done


def sweeping(condition, every: float = 1.0):
    """`condition` polled while the recovery sweep runs every `every` seconds (as beat does)."""
    last = [0.0]

    def predicate():
        if time.monotonic() - last[0] >= every:
            services.recover_processes()
            last[0] = time.monotonic()
        return condition()

    return predicate


def test_sigkill_at_twenty_points_loses_nothing_and_repeats_nothing(
    synced, start_worker, settings
):
    """Kill the worker mid-step 20 times; each time another worker and the sweep go on. A spare
    worker is always up (a worker takes seconds to start): it takes the run back once the dead
    worker's lease expired, and the next spare starts at each kill."""
    settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS = 2
    process = services.start_process(
        workflow_name="wf_counted", input_pages=[{"sleep": 0.4}]
    )
    rng = random.Random(20)
    workers = [start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE) for _ in range(2)]
    kills = 0
    while kills < 20 and status_of(process) != "completed":
        done_before = ProcessStep.objects.filter(process=process).count()
        try:
            wait_for(
                sweeping(
                    lambda before=done_before: ProcessStep.objects.filter(
                        process=process
                    ).count() > before
                    or status_of(process) == "completed"
                ),
                timeout=60,
                interval=0.02,
            )
        except AssertionError:
            row = Process.objects.values(
                "status", "lease_owner", "lease_expires_at", "enqueued_at", "delivery_count"
            ).get(pk=process.pk)
            pytest.fail(f"no progress after {kills} kills: {row} now={timezone.now()}")
        time.sleep(rng.uniform(0.05, 0.35))  # somewhere inside the next step
        kill_lease_holder(process, workers, lambda: start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE))
        kills += 1
        # The lease of the dead worker expires; the sweep takes the process back.
        wait_for(
            lambda: not Process.objects.filter(
                pk=process.pk, lease_expires_at__gt=timezone.now()
            ).exists(),
            timeout=10,
        )
    assert kills == 20, f"only {kills} kill points before the run ended"
    wait_for(sweeping(lambda: status_of(process) == "completed"), timeout=60, interval=0.1)
    assert_each_step_once(process)


def test_run_submitted_while_the_broker_is_down_completes_once_it_is_back(synced, start_worker,
                                                                          worker_env):
    """Submitted with no broker and no worker: stored, then sent by the sweep."""
    env = {**worker_env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}
    result = subprocess.run(
        [sys.executable, "manage.py", "start_workflow", "task_demo",
         "--input", '{"message": "broker down"}'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    process_id = result.stdout.split()[0]
    process = Process.objects.get(pk=process_id)
    assert process.status == "created" and process.enqueued_at is None
    time.sleep(1)
    assert status_of(process) == "created"
    start_worker(pool="threads", concurrency=2, ORCHESTRATOR_REQUEUE_AFTER_SECONDS="0")
    from orchestrator.tasks import recovery_sweep_task

    recovery_sweep_task.delay()  # what celery-beat sends every interval
    wait_for(lambda: status_of(process) == "completed", timeout=60)
    process.refresh_from_db()
    assert process.state["greeting"] == "Hello: broker down"


def test_pause_lets_the_step_in_flight_finish_and_starts_nothing_new(synced, start_worker,
                                                                     admin_user):
    start_worker(pool="threads", concurrency=2)
    long_run = services.start_process(workflow_name="wf_counted", input_pages=[{"sleep": 1.5}])
    wait_for(lambda: ProcessStep.objects.filter(process=long_run, name="Step 0").exists(),
             interval=0.02)
    services.set_engine_paused(paused=True, user=admin_user)
    wait_for(lambda: status_of(long_run) == "queued", timeout=10)
    names = list(ProcessStep.objects.filter(process=long_run).values_list("name", flat=True))
    assert names == ["Start", "Step 0", "Step 1"], names  # the step in flight finished
    new_run = services.start_process(workflow_name="task_demo", input_pages=[{"message": "x"}])
    time.sleep(2)
    assert status_of(new_run) == "queued"
    assert ProcessStep.objects.filter(process=long_run).count() == 3
    assert not ProcessStep.objects.filter(process=new_run).exists()
    Process.objects.filter(pk=long_run.pk).update(state={**long_run.state, "sleep": 0})
    services.set_engine_paused(paused=False, user=admin_user)
    wait_for(lambda: status_of(long_run) == "completed" and status_of(new_run) == "completed")
    assert_each_step_once(long_run)


def test_a_retrystep_that_cannot_reach_its_api_is_retried_by_the_worker(synced, start_worker):
    """Connection errors and HTTP 503 in a retrystep: `waiting`, then the delayed message
    resumes it after the backoff, until it gets through (never parked as api_unavailable)."""
    start_worker(pool="threads", concurrency=2)
    process = services.start_process(workflow_name="wf_retry_unreachable", input_pages=[])
    wait_for(lambda: status_of(process) == "waiting", timeout=60, interval=0.02)
    wait_for(lambda: status_of(process) == "completed", timeout=90)
    statuses = list(
        ProcessStep.objects.filter(process=process, name__startswith="Call").values_list(
            "status", flat=True
        )
    )
    assert statuses == ["waiting", "waiting", "success"] * 2
