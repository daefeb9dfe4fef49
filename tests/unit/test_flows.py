"""Flows and tasks (DESIGN §4.5), run in-process: options, replay, retries, cache, hooks."""

from __future__ import annotations

import datetime
import time
import uuid

import pytest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from orchestrator import services
from orchestrator.exceptions import FormInvalid
from orchestrator.flows import Flow, flow, task
from orchestrator.flows.children import WakeParentFlows
from orchestrator.models import Process, ProcessStep, WorkerPing
from tests import flows as test_flows
from tests.helpers import fixed, run, start
from tests.markers import present

pytestmark = pytest.mark.django_db(transaction=True)


def markers(prefix: str) -> list[str]:
    return sorted(WorkerPing.objects.filter(marker__startswith=prefix).values_list(
        "marker", flat=True))


def task_rows(process: Process, **filters):
    return ProcessStep.objects.filter(process=process, **filters).exclude(task_key="")


def test_a_flow_run_is_a_process_and_each_task_run_a_step_row(synced):
    process = run(start("flow-counted", {"tasks": 3}))
    assert process.status == "completed", process.failed_reason
    assert process.state["result"] == 30
    rows = list(ProcessStep.objects.filter(process=process).values_list(
        "name", "status", "task_key", "attempt"))
    assert rows == [
        ("Start", "success", "", 1),
        ("step-0", "success", "counted#0", 1),
        ("step-1", "success", "counted#1", 1),
        ("step-2", "success", "counted#2", 1),
        ("Done", "complete", "", 1),
    ]
    assert task_rows(process).first().state == {"result": 0}
    assert markers(f"{process.pk}:") == [f"{process.pk}:{index}" for index in range(3)]


def test_submitted_and_mapped_task_runs_are_waited_for(synced):
    process = run(start("flow-submitted", {"tasks": 6, "sleep": 0.05}))
    assert process.status == "completed", process.failed_reason
    assert process.state["result"] == [0, 10, 20, 30, 40, 50]
    assert task_rows(process, status="success").count() == 6
    mapped = run(start("flow-mapped", {"values": [3, 4]}))
    assert mapped.state["result"] == [30, 40]


def test_a_flow_re_run_after_a_failure_replays_completed_tasks(synced):
    process = run(start("flow-counted", {"tasks": 8, "fail_at": 5}))
    assert process.status == "failed"
    assert "task 5 fails on purpose" in process.failed_reason
    assert task_rows(process, status="failed").get().task_key == "counted#5"
    with fixed(process):
        services.resume_process(process=process)
        process = run(process)
    assert process.status == "completed", process.failed_reason
    assert markers(f"{process.pk}:") == sorted(f"{process.pk}:{index}" for index in range(8))
    replayed = task_rows(process, replayed=True).values_list("task_key", flat=True)
    assert sorted(replayed) == sorted(f"counted#{index}" for index in range(5))
    assert task_rows(process, task_key="counted#5").values_list("status", "attempt")[::1] == [
        ("failed", 1), ("success", 2)]


def test_flow_retries_rerun_the_flow_and_replay_what_completed(synced):
    process = run(start("flow-retried", {}))
    assert process.status == "waiting" and process.retry_count == 1
    process = run(process)  # retry_delay_seconds=0: due at once
    assert process.status == "completed", process.failed_reason
    assert markers(f"{process.pk}:") == sorted(
        [f"{process.pk}:0", f"{process.pk}:1", f"{process.pk}:flow-attempt"])


def test_retries_follow_the_delay_list_and_repeat_its_last_delay(synced):
    process = run(start("flow-retry-delays", {"succeed_on": 5}))
    assert process.status == "completed", process.failed_reason
    assert process.state["result"] == 5
    attempts = list(task_rows(process).order_by("attempt"))
    assert [(row.attempt, row.status) for row in attempts] == [
        (1, "failed"), (2, "failed"), (3, "failed"), (4, "failed"), (5, "success")]
    assert [row.state["retry_in"] for row in attempts[:4]] == [0.3, 0.1, 0.6, 0.6]
    for before, after, delay in zip(attempts, attempts[1:], [0.3, 0.1, 0.6, 0.6], strict=False):
        assert (after.started_at - before.completed_at).total_seconds() >= delay
    # A failed attempt's database writes roll back with it: only the fifth committed.
    assert markers(f"{process.pk}:flaky") == [f"{process.pk}:flaky:5"]


def test_retries_stop_when_they_run_out(synced):
    process = run(start("flow-retry-delays", {"succeed_on": 9}))
    assert process.status == "api_unavailable"  # a ConnectionError, after 1 + 4 attempts
    assert task_rows(process, status="failed").count() == 5
    assert "attempt 5 fails" in process.failed_reason


def test_retry_condition_fn_returning_false_stops_retrying(synced):
    process = run(start("flow-retry-condition", {"fail_with": "value"}))
    assert process.status == "failed"
    assert "ValueError: not retried" in process.failed_reason
    attempts = task_rows(process).values_list("attempt", "status", "state")
    assert [(attempt, status) for attempt, status, _ in attempts] == [
        (1, "failed"), (2, "failed")]  # attempt 1 retried, attempt 2 not
    assert "retry_in" in attempts[0][2] and "retry_in" not in attempts[1][2]
    process = run(start("flow-retry-condition", {"fail_with": "connection"}))
    assert task_rows(process).count() == 6  # retried until the retries ran out


def hooks_of(process: Process) -> list[str]:
    return [marker.split(":", 1)[1] for marker in markers(f"{process.pk}:")
            if "-" in marker.split(":", 1)[1]]


def test_each_hook_runs_once_with_the_run_and_its_final_state(synced):
    process = run(start("flow-hooks", {"fail": False}))
    assert process.status == "completed"
    assert hooks_of(process) == sorted([
        "flow-running:RUNNING", "task-completion:COMPLETED", "flow-completion:COMPLETED"])
    process = run(start("flow-hooks", {"fail": True}))
    assert process.status == "failed"
    assert task_rows(process, status="failed").count() == 2  # retried once
    assert hooks_of(process) == sorted([
        "flow-running:RUNNING", "task-failure:FAILED", "flow-failure:FAILED"])


def test_on_crashed_runs_once_when_the_worker_kept_dying(synced):
    process = start("flow-hooks", {})
    Process.objects.filter(pk=process.pk).update(
        delivery_count=settings.ORCHESTRATOR_MAX_DELIVERIES)
    process = run(process)
    assert process.status == "failed" and "gave up after" in process.failed_reason
    assert hooks_of(process) == ["flow-crashed:CRASHED"]


def test_a_cache_hit_skips_the_task_body_until_the_expiration_across_runs(synced):
    value = uuid.uuid4().int % 10**9
    first = run(start("flow-cached", {"value": value}))
    second = run(start("flow-cached", {"value": value}))
    assert first.state["result"] == second.state["result"] == value * 2
    assert markers(f"expensive:{value}") == [f"expensive:{value}"]
    hit = task_rows(second).get()
    assert hit.cache_hit and hit.cache_key == task_rows(first).get().cache_key
    other = run(start("flow-cached", {"value": value + 1}))  # other inputs: no hit
    assert not task_rows(other).get().cache_hit
    expires = task_rows(first).get().cache_expires_at
    time.sleep(max(0.0, (expires - timezone.now()).total_seconds()) + 0.05)
    third = run(start("flow-cached", {"value": value}))
    assert not task_rows(third).get().cache_hit
    assert markers(f"expensive:{value}") == [f"expensive:{value}"] * 2


def test_a_sub_flow_is_a_child_process_of_its_parent(synced):
    parent = run(start("flow-parent", {"values": [1, 2]}))
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["result"] == [11, 21]
    children = list(Process.objects.filter(parent=parent).order_by("call_key"))
    assert [child.workflow.name for child in children] == ["flow-child", "flow-child"]
    assert [child.call_key for child in children] == ["flow-child#0", "flow-child#1"]
    assert [child.run_name for child in children] == ["child-1", "child-2"]
    assert all(child.status == "completed" for child in children)


def test_parameters_are_checked_and_coerced_before_the_run_starts(synced):
    page = {"name": "sw1", "count": 3, "when": "2024-05-01T10:00:00+00:00",
            "ids": [1, 2], "colour": "blue", "site": {"name": "ams", "racks": 4}}
    process = run(start("flow-typed", page))
    assert process.status == "completed", process.failed_reason
    assert process.run_name == "typed-sw1"
    result = process.state["result"]
    assert result["count"] == 3 and result["ids"] == [1, 2] and result["colour"] == "blue"
    assert result["site"] == {"name": "ams", "racks": 4} and result["types"] == [
        "datetime", "Colour"]
    assert result["ratio"] == 0.5 and result["enabled"] is True  # the defaults
    before = Process.objects.count()
    with pytest.raises(FormInvalid) as refused:
        start("flow-typed", {"name": "x", "count": "many", "when": "soon", "ids": [1, "2"],
                             "colour": "green", "site": {"racks": 2}})
    assert set(refused.value.field_errors) >= {"count", "when", "colour", "ids", "site"}
    with pytest.raises(FormInvalid) as missing:
        start("flow-typed", {"name": "x"})
    assert {"count", "when", "ids"} <= set(missing.value.field_errors)
    with pytest.raises(FormInvalid):
        start("flow-typed", {**page, "unknown": 1})
    assert Process.objects.count() == before


def test_async_flows_and_tasks(synced):
    process = run(start("flow-async", {"values": [1, 2, 3]}))
    assert process.status == "completed", process.failed_reason
    assert process.state["result"] == 13
    keys = sorted(task_rows(process).values_list("task_key", flat=True))
    assert keys == ["async_double#0", "async_double#1", "async_double#2", "sync_add#0"]


def test_past_its_timeout_a_task_fails_and_its_failure_hook_runs(synced):
    process = run(start("flow-timeout", {"seconds": 1.0}))
    assert process.status == "failed"
    assert "TaskRunTimeout" in process.failed_reason and "0.3 seconds" in process.failed_reason
    assert hooks_of(process) == ["timeout-failure:FAILED"]
    time.sleep(1.0)  # the abandoned body ends: its writes are rolled back, not committed
    assert markers(f"{process.pk}:too-slow") == []
    process = run(start("flow-timeout", {"seconds": 0.01}))
    assert process.status == "completed"


def test_a_result_that_is_not_json_fails_the_task_clearly(synced):
    process = run(start("flow-unstorable"))
    assert process.status == "failed"
    assert "cannot be stored as JSON" in process.failed_reason
    assert task_rows(process, status="failed").count() == 3


def test_calling_a_flow_outside_a_flow_runs_it_as_a_process(synced):
    assert test_flows.flow_counted(tasks=2) == 10
    process = Process.objects.filter(workflow__name="flow-counted").get()
    assert process.status == "completed" and process.state["tasks"] == 2


def test_tasks_outside_a_flow_are_plain_functions():
    assert test_flows.sync_add.fn is not None
    assert test_flows.expensive.with_options(retries=2).retries == 2
    with pytest.raises(RuntimeError, match="needs a running flow"):
        test_flows.noop.submit()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retries": -1}, "retries"),
        ({"retries": "3"}, "retries"),
        ({"retry_delay_seconds": "soon"}, "retry_delay_seconds"),
        ({"retry_delay_seconds": [1, -2]}, "retry_delay_seconds"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"cache_expiration": 60}, "cache_expiration"),
        ({"on_failure": ["not callable"]}, "on_failure"),
        ({"name": "a#b"}, "task name"),
    ],
)
def test_bad_task_options_are_refused_at_definition(options, message):
    with pytest.raises((TypeError, ValueError), match=message):
        task(lambda: None, **options)


def test_reserved_parameter_names_are_refused():
    def uses_process_id(process_id: str) -> None: ...

    with pytest.raises(TypeError, match="reserved"):
        flow(uses_process_id)
    assert isinstance(flow(name="ok")(lambda x=1: x), Flow)


def test_the_flow_form_describes_its_parameters(synced, api, operator):
    response = api(operator).get("/api/workflows/flow-typed/")
    assert response.status_code == 200
    form = response.json()["form"]
    assert form["required"] == ["name", "count", "when", "ids"]
    properties = form["properties"]
    assert properties["count"]["type"] == "integer"
    assert properties["when"]["format"] == "date-time"
    assert properties["colour"]["enum"] == ["red", "blue", None]  # null: not given
    assert properties["ids"]["type"] == "array"
    assert properties["site"]["properties"]["racks"]["type"] == "integer"  # from pydantic
    assert properties["ratio"]["default"] == 0.5


def test_bad_parameters_through_the_api_are_a_400_naming_them(synced, api, operator):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "flow-typed", "input": [{"name": "x", "count": "x", "when": "2024-01-01",
                                             "ids": "nope"}]},
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert "count" in body and "ids" in body
    assert not Process.objects.filter(workflow__name="flow-typed").exists()
    good = api(operator).post(
        "/api/processes/",
        {"workflow": "flow-typed",
         "input": [{"name": "x", "count": 1, "when": "2024-01-01T00:00:00Z", "ids": [1]}]},
        format="json",
    )
    assert good.status_code == 201, good.json()
    assert good.json()["state"]["ids"] == [1]


def test_secret_parameters_stay_out_of_the_state(synced):
    process = start("flow-secret", {"username": "ann", "password": "s3cret-value"})
    assert "password" not in process.state and process.secrets
    process = run(process)
    assert process.status == "completed", process.failed_reason
    rows = ProcessStep.objects.filter(process=process)
    assert all("s3cret-value" not in str(row.state) or "redacted" in str(row.state)
               for row in rows)


def test_an_optional_secret_parameter_may_be_left_out(synced):
    process = start("flow-deploy", {"site": "ams1"})  # token: SecretStr | None = None
    assert process.state["site"] == "ams1" and "token" not in process.state
    process = run(process)
    assert process.status == "completed", process.failed_reason


def test_the_flow_waits_for_submitted_failures_and_reports_them(synced):
    process = run(start("flow-counted-submitted-failure"))
    assert process.status == "failed"
    assert "submitted task run(s) failed" in process.failed_reason


def test_deadline_of_the_whole_flow(synced):
    process = run(start("flow-slow-flow"))
    assert process.status == "failed"
    assert "FlowRunTimeout" in process.failed_reason
    assert datetime.timedelta(0) < process.finished_at - process.started_at if \
        process.finished_at else True


# --- runs a flow starts: sub-flows, submit, execute, batches ---------------------------------

KIDS = ["execute_in_task#0:0", "flow-child#0", "wf_child#0", "wf_child#1", "wf_child#2",
        "wf_child#3"]


def children_of(process: Process) -> dict[str, Process]:
    return {child.call_key: child for child in Process.objects.filter(parent=process)}


def child_runs(child: Process) -> int:
    return WorkerPing.objects.filter(marker=f"child:{child.pk}").count()


def test_the_runs_a_flow_starts_are_its_children_keyed_by_the_call(synced):
    parent = run(start("flow-kids", {"value": 1}))
    assert parent.status == "completed", parent.failed_reason
    result = parent.state["result"]
    assert result["sub"] == 11 and result["executed"] == 4 and result["in_task"] == 10
    assert result["batch"] == [[6, None], [8, None]]
    children = children_of(parent)
    assert sorted(children) == KIDS
    submitted = children.pop("wf_child#0")  # fire and forget: nobody waited for it
    assert str(submitted.pk) == result["submitted"] and submitted.status == "created"
    assert {child.status for child in children.values()} == {"completed"}
    assert children["flow-child#0"].workflow.name == "flow-child"
    assert list(parent.tag_rows.values_list("name", flat=True)) == ["node:n5"]


def test_a_flow_retried_after_a_failed_child_reuses_its_children_and_retries_that_one(synced):
    parent = run(start("flow-kids", {"value": 61, "fail": True}))
    assert parent.status == "failed"
    assert "WorkflowRunFailed" in parent.failed_reason
    assert "child 62 fails on purpose" in parent.failed_reason
    before = children_of(parent)
    assert sorted(before) == ["flow-child#0", "wf_child#0", "wf_child#1"]
    assert before["wf_child#1"].status == "failed"
    with present("fix-62"):  # the executed child's value
        services.resume_process(process=parent)
        parent = run(parent)
    assert parent.status == "completed", parent.failed_reason
    after = children_of(parent)
    assert sorted(after) == KIDS
    assert all(after[key].pk == child.pk for key, child in before.items())  # found again
    assert after["wf_child#1"].status == "completed"  # the failed one, retried
    assert child_runs(after["wf_child#1"]) == 1  # its failed attempt rolled back
    assert after["wf_child#0"].status == "created"  # not started twice, not run
    assert markers(f"{after['flow-child#0'].pk}:") == [f"{after['flow-child#0'].pk}:61"]
    assert parent.state["result"]["executed"] == 124


def test_a_flow_waiting_for_a_child_parks_without_a_worker_and_its_end_wakes_it(synced):
    parent = run(start("flow-parks", {"value": 7}))
    assert parent.status == "waiting" and parent.waiting_on_children
    assert parent.lease_owner == ""  # no worker held while it waits
    child = Process.objects.get(parent=parent)
    assert child.status == "waiting" and child.call_key == "flow-flaky-child#0"
    time.sleep(max(0.0, (child.retry_at - timezone.now()).total_seconds()) + 0.05)
    child = run(child)
    assert child.status == "completed"
    parent.refresh_from_db()
    assert parent.status == "resumed" and not parent.waiting_on_children  # woken
    parent = run(parent)
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["result"] == 7
    assert markers(f"{child.pk}:flaky-child") == [f"{child.pk}:flaky-child"] * 2


def test_a_child_that_failed_while_its_parent_was_parked_fails_the_parent(synced):
    parent = run(start("flow-parks", {"value": 8}))
    child = Process.objects.get(parent=parent)
    with transaction.atomic():  # it ends failed (as its last retry would), which wakes
        Process.objects.filter(pk=child.pk).update(status="failed", failed_reason="gone")
        child.refresh_from_db()
        WakeParentFlows().process_stopped(child, "failed")
    parent = run(parent)
    assert parent.status == "failed" and f"run {child.pk} ended failed: gone" in \
        parent.failed_reason
    assert Process.objects.get(pk=child.pk).status == "failed"  # not retried by the wake


def test_only_a_child_started_by_a_flow_call_wakes_its_parked_parent(synced):
    """A flow waits only for children its function started, each keyed by its call. A
    child without a key (a blueprint step, a validation run) is no flow's to wait for: its
    end leaves the parent alone and costs no statement; the keyed child's end wakes it."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    parent = run(start("flow-parks", {"value": 9}))
    assert parent.status == "waiting" and parent.waiting_on_children
    keyed = Process.objects.get(parent=parent)
    assert keyed.call_key
    unkeyed = start("flow-child", {"value": 1}, parent=parent)
    assert unkeyed.call_key == ""
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        WakeParentFlows().process_stopped(unkeyed, "completed")
    assert [query["sql"] for query in queries if "orchestrator_process" in query["sql"]] == []
    parent.refresh_from_db()
    assert parent.status == "waiting" and parent.waiting_on_children
    with transaction.atomic():
        WakeParentFlows().process_stopped(keyed, "completed")
    parent.refresh_from_db()
    assert parent.status == "resumed" and not parent.waiting_on_children


def test_an_async_flow_awaits_execute_batches_and_sub_flows_as_children(synced):
    parent = run(start("flow-kids-async", {"value": 1}))
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["result"] == {"executed": 2, "batch": [[4, None], [6, None]],
                                      "sub": 41}
    assert sorted(children_of(parent)) == ["flow-child#0", "wf_child#0", "wf_child#1",
                                           "wf_child#2"]


# --- the CeleryTaskRunner's pieces (its runs on real workers: tests/integration) -------------


def test_a_task_sent_to_another_worker_must_be_found_there_as_it_is_here():
    from orchestrator.flows.runners import task_address

    assert task_address(test_flows.counted) == {
        "module": "tests.flows", "qualname": "counted", "name": "counted"}
    assert task_address(test_flows.counted.with_options(name="tick"))["name"] == "tick"
    with pytest.raises(TypeError, match="options of its own"):
        task_address(test_flows.counted.with_options(retries=2))

    @task
    def local() -> None: ...

    with pytest.raises(TypeError, match="not a @task defined at module level"):
        task_address(local)
    with pytest.raises(TypeError, match="task_runner"):
        flow(lambda: None, task_runner="celery")


def test_a_failure_on_another_worker_comes_back_as_the_same_builtin_exception():
    from orchestrator.flows import TaskRunFailed, TaskRunTimeout
    from orchestrator.flows.runners import rebuilt_error

    error = rebuilt_error("ConnectionError: refused")
    assert type(error) is ConnectionError and str(error) == "refused"
    assert type(rebuilt_error("TaskRunTimeout: too slow")) is TaskRunTimeout
    mine = rebuilt_error("MyError: boom")
    assert isinstance(mine, TaskRunFailed) and str(mine) == "MyError: boom"


def test_a_task_run_sent_by_a_turn_that_lost_the_lease_does_nothing(synced):
    from orchestrator.flows.runners import run_sent

    process = start("flow-on-celery", {"tasks": 1})
    Process.objects.filter(pk=process.pk).update(status="running", lease_owner="the-turn")
    payload = {"process": str(process.pk), "key": "counted#0", "attempt": 1,
               "parameters": {"index": 0, "where": True}, "module": "tests.flows",
               "qualname": "counted", "name": "counted"}
    run_sent({**payload, "owner": "an-earlier-turn"})
    assert not task_rows(process).exists() and markers(f"{process.pk}:") == []
    run_sent({**payload, "owner": "the-turn"})
    run_sent({**payload, "owner": "the-turn"})  # delivered twice: the second finds its row
    assert list(task_rows(process).values_list("task_key", "status")) == [
        ("counted#0", "success")]
    assert markers(f"{process.pk}:") == [f"{process.pk}:0"]
