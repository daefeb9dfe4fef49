"""Durable flows on real workers (DESIGN §4.5): killed workers and retried failures never run a
completed task body twice. These tests start their own workers and drive the recovery sweep
themselves (as celery-beat would)."""

from __future__ import annotations

import random
import time

import pytest
from django.utils import timezone

from orchestrator import services
from orchestrator.models import Process, ProcessStep, WorkerPing
from tests.conftest import kill_lease_holder, needs_concurrent_writers, wait_for
from tests.helpers import fixed

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
LEASE = "2"


def status_of(process: Process) -> str:
    return Process.objects.values_list("status", flat=True).get(pk=process.pk)


def task_successes(process: Process) -> int:
    return ProcessStep.objects.filter(
        process=process, status="success", replayed=False).exclude(task_key="").count()


def assert_each_task_body_once(process: Process, count: int = 10) -> None:
    found = sorted(WorkerPing.objects.filter(marker__startswith=f"{process.pk}:").values_list(
        "marker", flat=True))
    assert found == sorted(f"{process.pk}:{index}" for index in range(count))
    keys = list(ProcessStep.objects.filter(process=process, status="success", replayed=False)
                .exclude(task_key="").values_list("task_key", flat=True))
    assert sorted(keys) == sorted(f"counted#{index}" for index in range(count))


def sweeping(condition, every: float = 1.0):
    last = [0.0]

    def predicate():
        if time.monotonic() - last[0] >= every:
            services.recover_processes()
            last[0] = time.monotonic()
        return condition()

    return predicate


def test_a_worker_killed_in_the_middle_of_a_flow_runs_each_task_body_once(
    synced, start_worker, settings
):
    """A spare worker is always up (a worker takes seconds to start): it takes the run back
    once the dead worker's lease expired, and the next spare starts at each kill."""
    settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS = 2
    process = services.start_process(
        workflow_name="flow-counted", input_pages=[{"tasks": 10, "sleep": 0.4}])
    rng = random.Random(9)
    workers = [start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE) for _ in range(2)]
    kills = 0
    while kills < 4 and status_of(process) != "completed":
        done_before = task_successes(process)
        wait_for(sweeping(lambda before=done_before: task_successes(process) > before
                          or status_of(process) == "completed"), timeout=60, interval=0.02)
        time.sleep(rng.uniform(0.05, 0.3))  # inside the next task body
        kill_lease_holder(process, workers, lambda: start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE))
        kills += 1
        wait_for(lambda: not Process.objects.filter(
            pk=process.pk, lease_expires_at__gt=timezone.now()).exists(), timeout=10)
    assert kills == 4
    assert status_of(process) != "completed"
    wait_for(sweeping(lambda: status_of(process) == "completed"), timeout=90)
    process.refresh_from_db()
    assert process.state["result"] == sum(index * 10 for index in range(10))
    assert_each_task_body_once(process)
    assert ProcessStep.objects.filter(process=process, replayed=True).exists()


def test_a_worker_killed_while_submitted_task_runs_are_in_flight_runs_each_body_once(
    synced, start_worker, settings
):
    settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS = 2
    process = services.start_process(
        workflow_name="flow-submitted", input_pages=[{"tasks": 10, "sleep": 0.5}])
    worker = start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE, ORCHESTRATOR_FLOW_MAX_WORKERS="3")
    wait_for(lambda: task_successes(process) >= 3, timeout=60, interval=0.02)
    time.sleep(0.2)  # three more task bodies in flight
    worker.kill()
    assert task_successes(process) < 10
    # The next worker starts while the lease runs out (only the sweep gives it the run).
    start_worker(ORCHESTRATOR_LEASE_SECONDS=LEASE, ORCHESTRATOR_FLOW_MAX_WORKERS="3")
    wait_for(lambda: not Process.objects.filter(
        pk=process.pk, lease_expires_at__gt=timezone.now()).exists(), timeout=10)
    wait_for(sweeping(lambda: status_of(process) == "completed"), timeout=90)
    process.refresh_from_db()
    assert process.state["result"] == [index * 10 for index in range(10)]
    assert_each_task_body_once(process)
    assert ProcessStep.objects.filter(process=process, replayed=True).exists()


def test_a_flow_retried_after_a_failure_runs_each_task_body_once(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    process = services.start_process(
        workflow_name="flow-counted", input_pages=[{"tasks": 10, "fail_at": 6}])
    wait_for(lambda: status_of(process) == "failed")
    process.refresh_from_db()
    assert "task 6 fails on purpose" in process.failed_reason
    with fixed(process):
        services.resume_process(process=process)
        wait_for(lambda: status_of(process) == "completed")
    assert_each_task_body_once(process)
    replayed = ProcessStep.objects.filter(process=process, replayed=True)
    assert sorted(replayed.values_list("task_key", flat=True)) == sorted(
        f"counted#{index}" for index in range(6))


def test_submitted_tasks_and_sub_flows_on_a_worker(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    submitted = services.start_process(
        workflow_name="flow-submitted", input_pages=[{"tasks": 10, "sleep": 0.05}])
    parent = services.start_process(workflow_name="flow-parent", input_pages=[{"values": [1, 2]}])
    wait_for(lambda: status_of(submitted) == "completed" and status_of(parent) == "completed")
    assert_each_task_body_once(submitted)
    children = Process.objects.filter(parent=parent)
    assert sorted(child.state["result"] for child in children) == [11, 21]
    assert all(child.status == "completed" for child in children)


@needs_concurrent_writers
def test_aborting_a_running_flow_runs_its_cancellation_hook_once(synced, start_worker):
    start_worker(pool="threads", concurrency=2)
    process = services.start_process(
        workflow_name="flow-hooks", input_pages=[{"wait": 1.5}])
    wait_for(lambda: ProcessStep.objects.filter(process=process, task_key="hooked_task#0"
                                                ).exists(), interval=0.02)
    services.abort_process(process=process)

    def hooks():
        return sorted(marker.split(":", 1)[1] for marker in WorkerPing.objects.filter(
            marker__startswith=f"{process.pk}:").values_list("marker", flat=True)
            if "-" in marker.split(":", 1)[1])

    wait_for(lambda: "flow-cancellation:CANCELLED" in hooks(), timeout=30)
    time.sleep(0.5)
    assert hooks() == sorted([
        "flow-running:RUNNING", "task-completion:COMPLETED", "flow-cancellation:CANCELLED"])
    assert status_of(process) == "aborted"
    assert not ProcessStep.objects.filter(process=process, task_key="slow#0").exists()


KIDS = ["execute_in_task#0:0", "flow-child#0", "wf_child#0", "wf_child#1", "wf_child#2",
        "wf_child#3"]


@pytest.mark.parametrize("pool", [("threads", 2), ("solo", 1)], ids=["two-threads", "one-thread"])
def test_sub_flows_execute_and_batches_of_a_flow_are_children_on_the_workers(
    synced, start_worker, api, operator, pool
):
    start_worker(pool=pool[0], concurrency=pool[1])
    parent = services.start_process(workflow_name="flow-kids",
                                    input_pages=[{"value": 1, "hold": 0.3}])
    wait_for(lambda: status_of(parent) == "completed", timeout=120)
    parent.refresh_from_db()
    assert parent.state["result"]["batch"] == [[6, None], [8, None]]
    body = api(operator).get(f"/api/processes/?parent={parent.pk}").json()
    assert body["count"] == len(KIDS)
    assert all(row["parent"] == str(parent.pk) for row in body["results"])
    assert sorted(Process.objects.filter(parent=parent).values_list("call_key", flat=True)) \
        == KIDS
    wait_for(lambda: not Process.objects.filter(parent=parent).exclude(
        status="completed").exists())  # the submitted one too, on its own
    pings = WorkerPing.objects.filter(marker__startswith="child:")
    assert pings.count() == 5 == pings.values("marker").distinct().count()  # each ran once


# --- the CeleryTaskRunner: submitted task runs as Celery tasks on other workers -------------


def pids(process: Process, prefix: str) -> list[int]:
    markers = WorkerPing.objects.filter(marker__startswith=f"{prefix}:{process.pk}:")
    return [int(marker.rsplit(":", 1)[1]) for marker in markers.values_list("marker", flat=True)]


def running_on_a_worker(process: Process) -> None:
    wait_for(lambda: Process.objects.filter(pk=process.pk, status="running").exclude(
        lease_owner="").exists(), interval=0.02)


def test_submitted_task_runs_run_as_celery_tasks_on_other_workers(synced, start_worker):
    start_worker()  # one thread: once it runs the flow, it takes no task run
    process = services.start_process(workflow_name="flow-on-celery",
                                     input_pages=[{"tasks": 10}])
    running_on_a_worker(process)
    start_worker()
    wait_for(lambda: status_of(process) == "completed", timeout=90)
    process.refresh_from_db()
    assert process.state["result"] == sum(index * 10 for index in range(10))
    assert_each_task_body_once(process)
    flow_pid, task_pids = pids(process, "flow-pid"), set(pids(process, "pid"))
    assert len(flow_pid) == 1 and len(task_pids) == 1 and flow_pid[0] not in task_pids


def test_a_task_worker_killed_in_the_middle_runs_each_task_body_once(synced, start_worker):
    start_worker(ORCHESTRATOR_REQUEUE_AFTER_SECONDS="2")
    process = services.start_process(workflow_name="flow-on-celery",
                                     input_pages=[{"tasks": 10, "sleep": 0.4}])
    running_on_a_worker(process)
    tasks_worker = start_worker()
    wait_for(lambda: task_successes(process) >= 3, timeout=60, interval=0.02)
    time.sleep(0.2)  # inside the next task body
    tasks_worker.kill()
    done_before = task_successes(process)
    assert done_before < 10
    start_worker()
    wait_for(lambda: status_of(process) == "completed", timeout=90)
    assert_each_task_body_once(process)


def test_a_flow_on_the_celery_runner_retried_after_a_failure_runs_each_body_once(
    synced, start_worker
):
    start_worker(pool="threads", concurrency=3)
    process = services.start_process(workflow_name="flow-on-celery",
                                     input_pages=[{"tasks": 10, "fail_at": 6}])
    wait_for(lambda: status_of(process) == "failed", timeout=60)
    process.refresh_from_db()
    assert "RuntimeError: task 6 fails on purpose" in process.failed_reason
    with fixed(process):
        services.resume_process(process=process)
        wait_for(lambda: status_of(process) == "completed", timeout=60)
    assert_each_task_body_once(process)
    replayed = set(ProcessStep.objects.filter(process=process, replayed=True).values_list(
        "task_key", flat=True))  # 7 to 9 too if they ended before the flow failed
    assert {f"counted#{index}" for index in range(6)} <= replayed
    assert "counted#6" not in replayed
