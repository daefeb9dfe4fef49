"""get_workflow(): submit, execute and batches of runs from code, sync and async, as
children of the running step's process; in-process (tests/integration/test_children.py
runs them on real workers)."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection, connections  # noqa: F401 - skipif conditions

from orchestrator.catalogue import get_workflow
from orchestrator.client import WorkflowResultTypeError, WorkflowRunFailed
from orchestrator.context import running
from orchestrator.exceptions import FormInvalid, NotFound, RunCancelled
from orchestrator.models import Process, WorkerPing
from orchestrator.runner import claim
from tests import markers
from tests.catalogue_workflows import CHILD
from tests.helpers import run, start

pytestmark = pytest.mark.django_db(transaction=True)


def child_runs() -> int:
    return WorkerPing.objects.filter(marker__startswith="child:").count()


def in_thread(func):
    """Run `func()` in a thread of its own (as a worker would) and return its outcome."""
    outcome = {}

    def target():
        try:
            outcome["value"] = func()
        except BaseException as error:  # noqa: BLE001 - re-raised below
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(timeout=120)
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def test_submit_takes_a_name_or_a_definition_and_returns_the_run_id(synced):
    client = get_workflow()
    first = client.submit_workflow(workflow="wf_child", parameters={"value": 1})
    second = client.submit_workflow(workflow=CHILD, parameters={"value": 2},
                                    context={"tags": ["branch:main"], "run_name": "second"})
    rows = {str(p.pk): p for p in Process.objects.all()}
    assert set(rows) == {first, second}
    assert rows[first].status == "created" and rows[first].parent is None
    assert rows[second].run_name == "second"
    assert list(rows[second].tag_rows.values_list("name", flat=True)) == ["branch:main"]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ({"workflow": "no_such_workflow"}, NotFound, "Unknown workflow"),
        ({"workflow": 42}, TypeError, "a name or a WorkflowDefinition"),
        ({"workflow": "wf_child", "parameters": "value=1"}, TypeError, "must be a dict"),
        ({"workflow": "wf_child", "parameters": {"value": "x"}}, FormInvalid, "value"),
        ({"workflow": "wf_child", "parameters": {"value": 1}, "context": {"colour": "red"}},
         TypeError, "unknown context key"),
    ],
)
def test_a_bad_submit_is_a_clear_error_and_stores_nothing(synced, call, error, message):
    with pytest.raises(error, match=message):
        get_workflow().submit_workflow(**call)
    assert not Process.objects.exists()


def test_execute_returns_the_result_and_checks_its_type(synced):
    client = get_workflow()
    assert client.execute_workflow(workflow="wf_child", parameters={"value": 21},
                                   expected_return=int) == 42
    with pytest.raises(WorkflowResultTypeError, match=r"returned str \('8'\), expected int"):
        client.execute_workflow(workflow="wf_child", parameters={"value": 4, "as_text": True},
                                expected_return=int)
    assert client.execute_workflow(workflow="wf_child", parameters={"value": 4},
                                   expected_return=int | None) == 8
    with pytest.raises(WorkflowResultTypeError, match="expected list"):
        client.execute_workflow(workflow="wf_child", parameters={"value": 4},
                                expected_return=list[int])


def test_execute_of_a_failing_run_raises_with_its_reason(synced):
    with pytest.raises(WorkflowRunFailed, match=r"wf_child run .* ended failed: .*fails on "):
        get_workflow().execute_workflow(workflow="wf_child", parameters={"value": 7, "fail": True})


def test_execute_of_a_cancel_new_workflow_at_its_limit_raises_run_cancelled(synced):
    first = start("wf_one_cancel_new", {"hold": 0})
    assert claim(str(first.pk), "a-worker")
    with pytest.raises(RunCancelled):
        get_workflow().execute_workflow(workflow="wf_one_cancel_new", parameters={"hold": 0})


def test_a_step_that_executes_children_makes_them_its_children(synced):
    parent = run(start("wf_parent_execute", {"values": [1, 2, 3]}))
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["child_results"] == [2, 4, 6] and parent.state["result"] == 12
    children = Process.objects.filter(parent=parent).order_by("call_key")
    assert [c.status for c in children] == ["completed"] * 3
    assert [c.call_key for c in children] == [
        "1:Execute a child per value:0", "1:Execute a child per value:1",
        "1:Execute a child per value:2",
    ]
    assert child_runs() == 3


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_retrying_the_parent_reuses_completed_children_and_retries_the_failed_one(synced):
    from orchestrator import services

    with markers.present("fix-2"):  # the child of 2 succeeds, the child of 1 fails
        parent = run(start("wf_parent_execute", {"values": [2, 1], "fail": True}))
        assert parent.status == "failed" and "WorkflowRunFailed" in parent.failed_reason
        done, failed = (Process.objects.get(parent=parent, status=status)
                        for status in ("completed", "failed"))
        assert child_runs() == 1  # the failed child's step left nothing
        with markers.present("fix-1"):
            services.resume_process(process=parent)
            parent = run(parent)
    assert parent.status == "completed", parent.failed_reason
    assert parent.state["child_results"] == [4, 2]
    assert Process.objects.filter(parent=parent).count() == 2  # no new child
    assert Process.objects.get(pk=failed.pk).status == "completed"  # retried
    assert child_runs() == 2  # the completed child did not run again


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_on_sqlite_a_failed_step_takes_its_children_with_it(synced):
    """SQLite has one writer, the step's transaction: children run inside it."""
    parent = run(start("wf_parent_execute", {"values": [1], "fail": True}))
    assert parent.status == "failed" and "child 1 fails on purpose" in parent.failed_reason
    assert not Process.objects.filter(parent=parent).exists()


def test_a_batch_gives_result_and_error_pairs_in_the_order_added(synced):
    parent = run(start("wf_parent_batch", {"values": [1, 2, 3], "fail": True}))
    assert parent.status == "completed", parent.failed_reason
    outcomes = parent.state["result"]
    assert [result for result, _ in outcomes] == [None, 4, None]
    assert outcomes[1][1] is None
    assert "wf_child run" in outcomes[0][1] and "child 1 fails on purpose" in outcomes[0][1]
    assert Process.objects.filter(parent=parent).count() == 3


def test_a_batch_with_a_refused_item_reports_it_and_runs_the_others(synced):
    batch = get_workflow().create_batch(max_concurrent=1)
    batch.add(workflow="wf_child", parameters={"value": 1})
    batch.add(workflow="wf_child", parameters={"value": "not a number"})
    batch.add(workflow="wf_child", parameters={"value": 3})
    outcomes = list(batch)
    assert outcomes[0] == (2, None) and outcomes[2] == (6, None)
    assert outcomes[1][0] is None and isinstance(outcomes[1][1], FormInvalid)
    assert batch.num_tasks == 3


def test_bad_batch_settings_are_refused():
    with pytest.raises(ValueError, match="max_concurrent"):
        get_workflow().create_batch(max_concurrent=0)


def test_submit_execute_and_batch_are_awaited_from_async_code(synced):
    process = start("wf_hold", {"hold": 0})

    async def main():
        client = get_workflow()
        submitted = await client.submit_workflow(workflow="wf_child", parameters={"value": 5})
        executed = await client.execute_workflow(workflow="wf_child", parameters={"value": 6},
                                                 expected_return=int)
        batch = client.create_batch()
        for value in (7, 8):
            batch.add(workflow="wf_child", parameters={"value": value})
        pairs = [pair async for pair in batch]
        await sync_to_async(connections.close_all)()
        return submitted, executed, pairs

    with running(process.pk, "wf_hold", "Async step", 1):
        context = contextvars.copy_context()
    submitted, executed, pairs = in_thread(lambda: context.run(asyncio.run, main()))
    assert executed == 12 and pairs == [(14, None), (16, None)]
    children = Process.objects.filter(parent=process)
    assert children.count() == 4 and str(children.get(call_key="1:Async step:0").pk) == submitted
