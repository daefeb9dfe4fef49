"""execute_workflow and batches from running steps (sync and async), on real workers: the
children show under the parent, run concurrently, and a worker whose every thread waits for
children still finishes them (the waiting thread runs a child no worker took)."""

from __future__ import annotations

import pytest
from django.db.models import Max, Min

from orchestrator import services
from orchestrator.models import Process, ProcessStep
from tests.conftest import needs_concurrent_writers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def finished(process: Process) -> Process:
    wait_for(lambda: Process.objects.filter(
        pk=process.pk, status__in=("completed", "failed")).exists(), timeout=120)
    process.refresh_from_db()
    return process


def test_execute_and_batch_from_steps_make_child_processes(synced, operator, api,
                                                           start_worker):
    start_worker(pool="threads", concurrency=4)
    executing = services.start_process(workflow_name="wf_parent_execute",
                                       input_pages=[{"values": [1, 2]}])
    batching = services.start_process(workflow_name="wf_parent_batch",
                                      input_pages=[{"values": [3, 4, 5]}])
    executing, batching = finished(executing), finished(batching)
    assert executing.status == "completed", executing.failed_reason
    assert executing.state["result"] == 6
    assert batching.status == "completed", batching.failed_reason
    assert batching.state["result"] == [[6, None], [8, None], [10, None]]

    body = api(operator).get(f"/api/processes/?parent={batching.pk}").json()
    assert body["count"] == 3 and all(row["parent"] == str(batching.pk)
                                      for row in body["results"])
    assert {row["status"] for row in body["results"]} == {"completed"}
    assert Process.objects.filter(parent=executing).count() == 2


def test_a_worker_with_one_thread_finishes_a_step_that_waits_for_children(synced,
                                                                          start_worker):
    start_worker(pool="solo", concurrency=1)  # its only thread waits in the parent's step
    parent = finished(services.start_process(workflow_name="wf_parent_batch",
                                             input_pages=[{"values": [1, 2, 3, 4]}]))
    assert parent.status == "completed", parent.failed_reason
    assert [result for result, _ in parent.state["result"]] == [2, 4, 6, 8]


@needs_concurrent_writers
def test_batch_children_run_concurrently_on_the_workers(synced, start_worker):
    start_worker(pool="threads", concurrency=4)
    start_worker(pool="threads", concurrency=4)
    parent = finished(services.start_process(
        workflow_name="wf_parent_batch", input_pages=[{"values": [10, 11, 12, 13], "hold": 0.5}]
    ))
    assert parent.status == "completed", parent.failed_reason
    spans = [
        ProcessStep.objects.filter(process=child).aggregate(a=Min("started_at"),
                                                            b=Max("completed_at"))
        for child in Process.objects.filter(parent=parent)
    ]
    overlapping = sum(1 for x in spans for y in spans
                      if x is not y and x["a"] < y["b"] and y["a"] < x["b"])
    assert overlapping > 0, spans


def test_async_steps_run_on_a_worker_and_execute_their_child(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    parent = finished(services.start_process(workflow_name="wf_async",
                                             input_pages=[{"value": 4}]))
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["in_step_transaction"] is True and parent.state["child"] == 16
    assert Process.objects.get(parent=parent).status == "completed"
