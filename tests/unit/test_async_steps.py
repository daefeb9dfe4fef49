"""`async def` steps (@step, @retrystep) run to their end in the step's thread: their ORM
work through sync_to_async (or Django's async ORM methods) is inside the step's transaction."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from orchestrator.models import Process, WorkerPing
from tests.helpers import run, start

pytestmark = pytest.mark.django_db(transaction=True)


def markers(process: Process) -> list[str]:
    return sorted(WorkerPing.objects.filter(marker__startswith=f"{process.pk}:")
                  .values_list("marker", flat=True))


def test_an_async_step_runs_and_its_writes_commit_with_the_step(synced):
    process = run(start("wf_async", {"value": 3}))
    assert process.status == "completed", process.failed_reason
    assert process.state["doubled"] == 6 and process.state["child"] == 12
    assert process.state["in_step_transaction"] is True
    assert process.state["run"] == str(process.pk)  # the run context reaches the coroutine
    assert markers(process) == [f"{process.pk}:async-orm", f"{process.pk}:async-sync"]
    child = Process.objects.get(parent=process)
    assert child.call_key == "2:Execute a child asynchronously:0" and child.status == "completed"


def test_a_failing_async_step_rolls_its_writes_back(synced):
    process = run(start("wf_async", {"value": 3, "fail": True}))
    assert process.status == "failed"
    assert "RuntimeError: the async step fails after writing" in process.failed_reason
    assert markers(process) == []


def test_the_orm_called_straight_from_an_async_step_fails_it_clearly(synced):
    process = run(start("wf_async", {"value": 3, "direct": True}))
    assert process.status == "failed"
    assert "SynchronousOnlyOperation" in process.failed_reason
    assert markers(process) == []


def test_an_async_retry_step_waits_and_retries(synced):
    process = run(start("wf_async_retry"))
    assert process.status == "waiting" and "not reachable yet" in process.failed_reason
    time.sleep(max(0.0, (process.retry_at - timezone.now()).total_seconds()) + 0.05)
    process = run(process)
    assert process.status == "completed", process.failed_reason
    assert process.state["retried"] is True
