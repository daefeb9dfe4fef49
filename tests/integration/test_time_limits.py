"""A hung step cannot hold a worker: past its time limit it fails, saying so, its database
session ends (its writes roll back, its locks go), and the worker runs other processes."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from orchestrator.models import Process, ProcessStep, WorkerPing
from tests.conftest import database_url_for_tests, wait_for
from tests.helpers import start

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_of(process: Process) -> str:
    return Process.objects.values_list("status", flat=True).get(pk=process.pk)


def assert_the_worker_is_free() -> None:
    """Its only slot runs the next process to the end."""
    after = start("task_demo", {"message": "next", "step_seconds": 0})
    wait_for(lambda: status_of(after) == "completed", timeout=60)


@pytest.mark.parametrize("pool", ["threads", "prefork", "solo"])
def test_a_hung_step_fails_at_its_limit_and_frees_the_worker(synced, start_worker, pool):
    start_worker(pool=pool, concurrency=1)
    hung = start("wf_hang")
    wait_for(lambda: status_of(hung) == "failed", timeout=60)
    hung.refresh_from_db()
    assert hung.failed_reason == "Step 'Hang' exceeded its time limit of 1 s"
    assert "in hang" in hung.traceback and "time.sleep(300)" in hung.traceback  # where it hung
    assert hung.lease_owner == "" and hung.lease_expires_at is None
    log = list(ProcessStep.objects.filter(process=hung).values_list("name", "status"))
    assert log == [("Start", "success"), ("Hang", "failed")]
    assert not WorkerPing.objects.filter(marker=f"{hung.pk}:hang").exists()  # rolled back
    assert_the_worker_is_free()


def test_a_step_blocked_on_a_row_lock_fails_under_the_default_limit_and_lets_go(
    synced, start_worker
):
    if connection.vendor != "postgresql":
        pytest.skip("row locks and session ends are PostgreSQL's")
    start_worker(pool="threads", concurrency=1, ORCHESTRATOR_STEP_TIME_LIMIT_SECONDS="1")
    WorkerPing.objects.create(marker="the-lock")
    with psycopg.connect(database_url_for_tests()) as holder:
        holder.execute(
            "SELECT id FROM orchestrator_workerping WHERE marker = 'the-lock' FOR UPDATE"
        )
        blocked = start("wf_locked")
        wait_for(lambda: status_of(blocked) == "failed", timeout=60)
        blocked.refresh_from_db()
        assert blocked.failed_reason == "Step 'Wait for the lock' exceeded its time limit of 1 s"

        def nobody_waits_for_a_lock() -> bool:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                return cursor.fetchone()[0] == 0

        wait_for(nobody_waits_for_a_lock, timeout=10)  # the step's session was ended
        assert_the_worker_is_free()  # while the lock is still held
    assert not WorkerPing.objects.filter(marker=f"{blocked.pk}:waiting").exists()
