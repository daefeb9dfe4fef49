"""The run context: steps know which run they belong to; add_tags tags it without its id."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from orchestrator.context import (
    NoRunningProcess,
    current_process_id,
    current_run,
    running,
)
from orchestrator.models import ProcessTag
from orchestrator.workflows.utils import add_branch_tag, add_tags
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


def tags_of(process) -> list[str]:
    return sorted(ProcessTag.objects.filter(process=process).values_list("name", flat=True))


def test_the_runner_sets_the_run_context_around_each_step(synced):
    process = run(start("wf_tagged", {}))
    assert process.status == "completed", process.failed_reason
    assert process.state["seen"] == [str(process.pk), "wf_tagged", "Look at the run context", 1]
    assert current_run() is None  # reset after the step


def test_add_tags_tags_the_current_run_without_its_id(synced):
    process = run(start("wf_tagged", {"fail": False}))
    assert process.status == "completed", process.failed_reason
    assert tags_of(process) == ["branch:feature", "branch:main", "doomed", "node:n-1"]


def test_tags_of_a_failed_step_are_rolled_back_with_it(synced):
    process = run(start("wf_tagged", {"fail": True}))
    assert process.status == "failed"
    assert "doomed" not in tags_of(process)
    assert "branch:main" in tags_of(process)  # from the step before, which committed


def test_add_tags_outside_a_run_says_what_is_missing(synced):
    with pytest.raises(NoRunningProcess, match="add_tags needs a running process"):
        add_tags(branches=["main"])


def test_add_tags_refuses_a_bare_string_and_empty_names(synced):
    process = start("wf_tagged", {})
    with running(process.pk), pytest.raises(TypeError, match="lists of names"):
        add_tags(branches="main")
    with running(process.pk), pytest.raises(ValueError, match="must not be empty"):
        add_tags(nodes=["  "])
    assert tags_of(process) == []


def test_the_older_process_id_forms_still_work(synced):
    process = start("wf_tagged", {})
    add_tags(str(process.pk), ["legacy", "legacy"])
    add_branch_tag(str(process.pk), "old")
    add_tags(nodes=["n-9"], process_id=str(process.pk))
    assert tags_of(process) == ["branch:old", "legacy", "node:n-9"]


@pytest.mark.django_db(transaction=True)
def test_add_tags_is_awaited_from_async_code(synced):
    process = start("wf_tagged", {})

    async def tag() -> None:
        await add_tags(branches=["async"], nodes=["n-2"])
        await add_branch_tag("other")
        await sync_to_async(connections.close_all)()  # asgiref's thread's connection

    with running(process.pk, "wf_tagged", "Async step"):
        # In a thread of its own, as a worker runs an async step (and away from any event
        # loop another test may have left in this thread); the context goes along.
        context = contextvars.copy_context()
    thread = threading.Thread(target=context.run, args=(asyncio.run, tag()))
    thread.start()
    thread.join()
    assert tags_of(process) == ["branch:async", "branch:other", "node:n-2"]


def test_each_thread_and_task_sees_its_own_run():
    seen = {}

    def worker(name: str) -> None:
        with running(name):
            seen[name] = current_process_id()

    threads = [threading.Thread(target=worker, args=(name,)) for name in ("a", "b")]
    with running("outer"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert current_process_id() == "outer"
    assert seen == {"a": "a", "b": "b"}
    assert current_process_id() is None


def test_child_call_keys_number_the_calls_of_one_step():
    with running("p", "wf", "Make children", 3) as run_context:
        assert [run_context.next_call_key() for _ in range(2)] == [
            "3:Make children:0", "3:Make children:1"
        ]
    with running("p", "wf", "Make children", 3) as again:  # a later attempt: same keys
        assert again.next_call_key() == "3:Make children:0"


def test_only_code_inside_a_coroutine_counts_as_async():
    """A loop marked running in this thread with no task in it (Playwright's sync API leaves
    one) is not async code: the ORM may be called and calls answer at once."""
    from orchestrator.aio import in_event_loop

    loop = asyncio.new_event_loop()
    asyncio._set_running_loop(loop)
    try:
        assert not in_event_loop()
    finally:
        asyncio._set_running_loop(None)
        loop.close()

    async def inside() -> bool:
        return in_event_loop()

    outcome = []
    thread = threading.Thread(target=lambda: outcome.append(asyncio.run(inside())))
    thread.start()
    thread.join()
    assert outcome == [True]
