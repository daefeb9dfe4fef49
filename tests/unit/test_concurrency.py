"""Concurrency limits (DESIGN §4.4), in-process: slots are live leases, `enqueue` waits in
order, `cancel_new` cancels a new run at once and says why. The real-worker versions are in
tests/integration/test_concurrency_limits.py."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from orchestrator import concurrency, services
from orchestrator.exceptions import RunCancelled
from orchestrator.models import Process, ProcessTag
from orchestrator.runner import claim, run_process
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


def status_of(process: Process) -> str:
    return Process.objects.values_list("status", flat=True).get(pk=process.pk)


def holding(name: str) -> Process:
    """A run of `name` that a (pretend) worker is running: it holds a live lease."""
    process = start(name, {"hold": 0})
    assert claim(str(process.pk), "worker-elsewhere")
    return process


def expire_lease(process: Process) -> None:
    Process.objects.filter(pk=process.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )


def test_cancel_new_cancels_a_second_run_while_the_first_runs_and_says_why(synced):
    first = holding("wf_one_cancel_new")
    with pytest.raises(RunCancelled) as refused:
        start("wf_one_cancel_new", {"hold": 0}, tags=["branch:main"])
    message = refused.value.message
    assert "wf_one_cancel_new runs at most 1 at a time" in message
    assert "cancel_new" in message and "1 run is already running or about to run" in message
    cancelled = refused.value.process
    stored = Process.objects.get(pk=cancelled.pk)
    assert stored.status == "cancelled" and stored.failed_reason == message
    assert stored.finished_at is not None and stored.lease_owner == ""
    assert list(ProcessTag.objects.filter(process=stored).values_list("name", flat=True)) == [
        "branch:main"
    ]
    assert status_of(first) == "running"
    assert run_process(str(stored.pk)) is False  # a stray delivery never runs it


def test_cancel_new_counts_a_stored_run_that_no_worker_took_yet(synced):
    start("wf_one_cancel_new", {"hold": 0})
    with pytest.raises(RunCancelled, match="about to run"):
        start("wf_one_cancel_new", {"hold": 0})


def test_cancel_new_accepts_runs_again_once_the_running_ones_lease_expired(synced):
    first = holding("wf_one_cancel_new")
    expire_lease(first)  # its worker died: nobody renews the lease
    second = start("wf_one_cancel_new", {"hold": 0})
    assert status_of(second) == "created"


def test_cancel_new_does_not_count_runs_that_wait_for_input_or_have_ended(synced):
    first = run(start("wf_one_cancel_new", {"hold": 0}))
    assert first.status == "completed"
    second = start("wf_one_cancel_new", {"hold": 0})
    assert status_of(second) == "created"


def test_enqueue_waits_as_queued_and_runs_get_slots_in_the_order_they_were_started(synced):
    first = holding("wf_one_enqueue")
    second = start("wf_one_enqueue", {"hold": 0})
    third = start("wf_one_enqueue", {"hold": 0})
    # The third run's message arrives first: no slot, and it waits.
    assert run_process(str(third.pk)) is False
    assert run_process(str(second.pk)) is False
    for waiting in (second, third):
        waiting.refresh_from_db()
        assert waiting.status == "queued" and waiting.slot_requested_at is not None
    assert concurrency.runs_ahead(second) == 0 and concurrency.runs_ahead(third) == 1
    assert concurrency.start_waiting_runs(first.workflow_id) == 0  # no free slot yet

    Process.objects.filter(pk=first.pk).update(status="completed", lease_owner="",
                                               lease_expires_at=None)
    assert concurrency.start_waiting_runs(first.workflow_id) == 1  # the oldest only
    assert run_process(str(third.pk)) is False  # the second is older: the third waits on
    assert run(second).status == "completed"
    assert run(third).status == "completed"
    assert Process.objects.get(pk=third.pk).slot_requested_at is None


def test_a_limit_of_two_lets_two_run_and_queues_the_third(synced):
    holding("wf_two_enqueue")
    holding("wf_two_enqueue")
    third = start("wf_two_enqueue", {"hold": 0})
    assert run_process(str(third.pk)) is False
    assert status_of(third) == "queued"


def test_an_expired_lease_frees_its_slot_and_the_sweep_starts_the_waiting_run(synced):
    first = holding("wf_one_enqueue")
    second = start("wf_one_enqueue", {"hold": 0})
    assert run_process(str(second.pk)) is False
    expire_lease(first)
    assert concurrency.start_waiting_runs(first.workflow_id) == 1
    # The dead run was started first, so it takes the slot back before the waiting one.
    assert run_process(str(second.pk)) is False
    assert run(first).status == "completed"
    assert run(second).status == "completed"


def test_the_sweep_starts_runs_waiting_for_a_slot(synced, monkeypatch):
    first = holding("wf_one_enqueue")
    second = start("wf_one_enqueue", {"hold": 0})
    run_process(str(second.pk))
    Process.objects.filter(pk=first.pk).update(status="completed", lease_owner="",
                                               lease_expires_at=None)
    started = []
    monkeypatch.setattr(services, "enqueue_process", lambda p, countdown=None: started.append(p))
    assert services.recover_processes() == 1
    assert [p.pk for p in started] == [second.pk]


def test_a_resumed_run_of_a_full_cancel_new_workflow_waits_instead(synced):
    first = holding("wf_one_cancel_new")
    expire_lease(first)
    second = start("wf_one_cancel_new", {"hold": 0})
    assert run_process(str(second.pk)) is False  # the older, dead run goes first
    assert status_of(second) == "queued"


def test_aborting_a_running_run_frees_its_slot(synced):
    first = holding("wf_one_enqueue")
    second = start("wf_one_enqueue", {"hold": 0})
    run_process(str(second.pk))
    services.abort_process(process=first)
    assert run(second).status == "completed"


def test_every_run_gets_a_name(synced):
    process = start("wf_hold", {"hold": 0})
    assert process.run_name == f"wf_hold {str(process.pk)[:8]}"
    named = start("wf_hold", {"hold": 0}, run_name="nightly check")
    assert named.run_name == "nightly check"
