"""The step kinds and the runner, run in-process (the integration tests add a real worker)."""

from __future__ import annotations

import datetime
import json

import pytest
from django.utils import timezone

from orchestrator import services
from orchestrator.exceptions import Conflict, FormInvalid, NotFound, PreconditionFailed
from orchestrator.models import Process, ProcessStep, WorkerPing, Workflow
from orchestrator.runner import run_process
from orchestrator.workflow import StepList, begin, done, init, step
from tests import markers
from tests.helpers import fixed, run, start

pytestmark = pytest.mark.django_db


def step_log(process: Process) -> list[tuple[str, str]]:
    return list(ProcessStep.objects.filter(process=process).values_list("name", "status"))


def test_step_list_composition_and_names():
    @step("A")
    def a():
        return {"a": 1}

    @step("B")
    def b(a: int):
        return {"b": a + 1}

    steps = begin >> init >> a >> (begin >> b) >> done
    assert isinstance(steps, StepList)
    assert steps.names == ["Start", "A", "B", "Done"]
    with pytest.raises(TypeError):
        _ = steps >> "not a step"


def test_a_run_logs_init_and_done_and_stores_each_state(synced):
    process = run(start("task_demo", {"message": "hi", "step_seconds": 0}))
    assert process.status == "completed"
    assert process.finished_at is not None
    log = step_log(process)
    assert log[0] == ("Start", "success") and log[-1] == ("Done", "complete")
    say_hello = ProcessStep.objects.get(process=process, name="Say hello")
    assert say_hello.state["greeting"] == "Hello: hi"
    assert process.state["summary"] == "Hello: hi after 0.0s of work"


def test_only_the_last_step_of_a_worker_run_keeps_one_run_of_its_own_queue():
    """runner.hand_off: a committing step that stops a worker's run keeps the first run of
    its task's queue for the worker to run next; every other run goes to the broker."""
    from orchestrator import runner

    runs = [("a", "user"), ("b", "core"), ("c", "core")]
    assert runner.hand_off(runs) == runs  # no worker run's stopping step is committing
    run_watch = runner.RunWatch("core")
    runner.offering.watch = run_watch
    try:
        assert runner.hand_off(runs) == [("a", "user"), ("c", "core")]
        assert run_watch.handed_off == "b"
        assert run_watch.kept_runs() == [("b", "core")]
        assert runner.hand_off([("d", "core")]) == [("d", "core")]  # one run, not two
        runner.offering.watch = runner.RunWatch(None)  # a run outside a worker's task
        assert runner.hand_off(runs) == runs
    finally:
        runner.offering.watch = None


@pytest.mark.parametrize("flag", ["should_stop", "should_terminate"])
def test_a_worker_shutting_down_keeps_no_run_for_itself(monkeypatch, flag):
    """Its warm shutdown waits for the run in hand only: what that run's last step starts goes
    to the broker, for the workers that stay (exit code 0 is a shutdown too)."""
    from celery.worker import state as worker_state

    from orchestrator import runner

    runs = [("a", "core"), ("b", "core")]
    runner.offering.watch = runner.RunWatch("core")
    try:
        monkeypatch.setattr(worker_state, flag, 0)
        assert runner.hand_off(runs) == runs
        assert runner.offering.watch.handed_off is None
        monkeypatch.setattr(worker_state, flag, None)
        assert runner.hand_off(runs) == [("b", "core")]
    finally:
        runner.offering.watch = None


def test_failing_step_fails_with_reason_and_resume_does_not_rerun_earlier_steps(synced, tmp_path):
    process = run(start("wf_counted", {"steps": 20, "fail_at": 7}))
    assert process.status == "failed"
    assert "step 7 fails on purpose" in process.failed_reason
    assert "Traceback" in process.traceback
    assert WorkerPing.objects.filter(marker__startswith=f"{process.pk}:").count() == 7
    with fixed(process):
        services.resume_process(process=process)
        process = run(process)
    assert process.status == "completed"
    markers = list(WorkerPing.objects.filter(marker__startswith=f"{process.pk}:").values_list(
        "marker", flat=True))
    assert len(markers) == 20 and len(set(markers)) == 20


def test_failure_classification(synced):
    assert run(start("wf_inconsistent")).status == "inconsistent_data"
    assert run(start("wf_api_down")).status == "api_unavailable"
    missing = run(start("wf_missing_key"))
    assert missing.status == "failed"
    assert "missing_key" in missing.failed_reason


def test_retrystep_waits_then_is_retried_until_it_succeeds(synced):
    process = run(start("wf_retry"))
    assert process.status == "waiting"
    assert process.retry_at is not None and process.retry_count == 1
    for _ in range(2):
        Process.objects.filter(pk=process.pk).update(retry_at=timezone.now())
        assert services.resume_waiting_processes() == 1
        process = run(process)
    assert process.status == "completed"
    assert process.state["flaky_attempts"] == 3
    statuses = [status for name, status in step_log(process) if name == "Flaky call"]
    assert statuses == ["waiting", "waiting", "success"]


def test_the_delayed_retry_message_runs_a_waiting_process_once_its_time_has_come(synced):
    process = run(start("wf_retry"))
    assert process.status == "waiting"
    assert not run_process(str(process.pk))  # too early: the backoff has not passed
    Process.objects.filter(pk=process.pk).update(retry_at=timezone.now())
    process = run(process)  # what the countdown message does when it arrives
    assert process.status == "waiting" and process.retry_count == 2


def test_retrystep_fails_after_the_limit(synced, settings):
    settings.ORCHESTRATOR_RETRY_MAX_ATTEMPTS = 1
    process = run(start("wf_retry"))
    assert process.status == "waiting"
    services.resume_waiting_processes()
    Process.objects.filter(pk=process.pk).update(status="resumed")
    assert run(process).status == "failed"


def run_until_settled(process: Process) -> Process:
    """Run it, and run it again whenever it waits for a retry (as if its backoff passed)."""
    process = run(process)
    for _ in range(10):
        if process.status != "waiting":
            break
        Process.objects.filter(pk=process.pk).update(retry_at=timezone.now())
        process = run(process)
    return process


def test_a_retrystep_that_cannot_reach_its_api_waits_and_is_retried(synced):
    """Connection errors and HTTP 503 from a retrystep: `waiting`, then retried (not parked)."""
    process = run(start("wf_retry_unreachable"))
    assert process.status == "waiting" and process.retry_at is not None
    assert "ConnectionError: connection refused" in process.failed_reason
    process = run_until_settled(process)
    assert process.status == "completed", process.failed_reason
    assert process.state["reached"] is True and process.state["answered"] is True
    log = [entry for entry in step_log(process) if entry[0].startswith("Call")]
    unreachable, unavailable = "Call an unreachable API", "Call an API that answers 503"
    assert log == [(unreachable, "waiting")] * 2 + [(unreachable, "success")] + [
        (unavailable, "waiting")] * 2 + [(unavailable, "success")]


def test_a_retrystep_out_of_attempts_is_classified_like_a_plain_step(synced, settings):
    settings.ORCHESTRATOR_RETRY_MAX_ATTEMPTS = 0
    process = run(start("wf_retry_unreachable"))
    assert process.status == "api_unavailable"


def test_a_manual_retry_gives_a_retrystep_its_attempts_again(synced, settings):
    settings.ORCHESTRATOR_RETRY_MAX_ATTEMPTS = 1
    process = run_until_settled(start("wf_retry"))
    assert process.status == "failed" and process.retry_count == 1
    markers.marker(f"flaky-{process.pk}").unlink()  # the remote is "down" again
    services.resume_process(process=process)
    process = run(process)
    assert process.status == "waiting" and process.retry_count == 1


def test_inputstep_suspends_and_valid_input_resumes(synced, operator):
    process = run(start("wf_input"))
    assert process.status == "suspended"
    with pytest.raises(FormInvalid) as invalid:
        services.resume_process(process=process, input_pages=[{"confirm": True, "vlan": 5000}],
                                user=operator)
    assert "vlan" in invalid.value.field_errors
    process.refresh_from_db()
    assert process.status == "suspended" and "vlan" not in process.state
    services.resume_process(process=process, input_pages=[{"confirm": True, "vlan": 42}],
                            user=operator)
    process = run(process)
    assert process.status == "completed"
    assert process.state["vlan_used"] == 42
    confirm = ProcessStep.objects.get(process=process, name="Confirm", status="success")
    assert confirm.created_by == operator


def test_conditional_step_is_skipped_or_run(synced):
    skipped = run(start("wf_conditional", {"run_it": False}))
    assert ("Skipped unless asked", "skipped") in step_log(skipped)
    assert "maybe_ran" not in skipped.state
    ran = run(start("wf_conditional", {"run_it": True}))
    assert ran.state["maybe_ran"] is True


def test_callback_step_waits_and_a_one_use_token_resumes_it(synced, monkeypatch):
    from orchestrator import runner

    monkeypatch.setattr(runner.token_generator, "token_urlsafe", lambda size: "known-token")
    process = run(start("wf_callback"))
    assert process.status == "awaiting_callback"
    token = "known-token"
    assert token not in json.dumps(process.state)
    assert process.callback_token != token
    with pytest.raises(NotFound):
        services.handle_callback(process_id=process.pk, token="wrong", body={"ok": True})
    services.record_callback_progress(process_id=process.pk, token=token, message="50% done")
    process.refresh_from_db()
    assert process.callback_progress == "50% done"
    services.handle_callback(process_id=process.pk, token=token, body={"ok": True})
    with pytest.raises(NotFound):
        services.handle_callback(process_id=process.pk, token=token, body={"ok": True})
    process = run(process)
    assert process.status == "completed"
    assert process.state["callback_result"] == {"ok": True}


def test_callback_timeout_fails_and_retry_issues_a_new_token(synced):
    process = run(start("wf_callback_timeout"))
    first_token = process.callback_token
    Process.objects.filter(pk=process.pk).update(
        callback_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    services.recover_processes()
    process.refresh_from_db()
    assert process.status == "failed" and process.failed_reason == "Callback timed out"
    services.resume_process(process=process)
    process = run(process)
    assert process.status == "awaiting_callback"
    assert process.callback_token and process.callback_token != first_token


def test_abort_step_and_abort_service(synced, operator):
    assert run(start("wf_abort")).status == "aborted"
    process = run(start("wf_input"))
    services.abort_process(process=process, user=operator)
    process.refresh_from_db()
    assert process.status == "aborted"
    with pytest.raises(Conflict):
        services.resume_process(process=process, user=operator)
    with pytest.raises(Conflict):
        services.abort_process(process=process, user=operator)


def test_resume_of_completed_process_is_refused(synced):
    process = run(start("task_demo", {"message": "x"}))
    with pytest.raises(Conflict, match="completed"):
        services.resume_process(process=process)


def test_secrets_never_reach_a_stored_state(synced):
    secret = "s3cr3t-Passw0rd!"
    process = run(start("wf_secret", {"username": "netops", "password": secret}))
    assert process.status == "completed"
    assert process.state["password_length"] == len(secret)
    stored = json.dumps(process.state) + json.dumps(
        list(ProcessStep.objects.filter(process=process).values_list("state", flat=True))
    )
    assert secret not in stored
    assert secret not in process.secrets


def test_unknown_workflow_and_invalid_input_store_nothing(synced):
    with pytest.raises(NotFound, match="no_such_workflow"):
        start("no_such_workflow")
    with pytest.raises(FormInvalid) as invalid:
        start("task_demo", {"message": "x" * 201})
    assert "message" in invalid.value.field_errors
    with pytest.raises(FormInvalid):
        services.start_process(workflow_name="task_demo", input_pages="not a list")
    with pytest.raises(PreconditionFailed):
        start("wf_refused")
    assert Process.objects.count() == 0


def test_permissions_are_enforced_by_the_services(synced, viewer, operator, admin_user):
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        start("task_demo", {"message": "x"}, user=viewer)
    process = run(start("task_demo", {"message": "x"}, user=operator))
    with pytest.raises(PermissionDenied):
        services.delete_process(process=process, user=operator)
    services.delete_process(process=process, user=admin_user)
    audited = run(start("wf_audited", user=operator))
    with pytest.raises(Conflict, match="audit"):
        services.delete_process(process=audited, user=admin_user)


def test_steps_continue_by_name_after_a_deployment(synced, monkeypatch):
    from tests import workflows

    process = run(start("wf_input"))
    assert process.status == "suspended"
    # The deployment inserts a step before the input step: the process goes on by name.
    extra = step("New first step")(lambda: {"new": True})
    changed = workflows.init >> extra >> workflows.confirm_step >> workflows.use_input
    monkeypatch.setattr(workflows.wf_input, "_steps", changed >> workflows.done)
    services.resume_process(process=process, input_pages=[{"confirm": True, "vlan": 7}])
    process = run(process)
    assert process.status == "completed" and "new" not in process.state
    # A deployment that removed the remaining steps: the resume is refused, naming them.
    process = run(start("wf_input"))
    monkeypatch.setattr(workflows.wf_input, "_steps", workflows.init >> workflows.done)
    Process.objects.filter(pk=process.pk).update(status="failed")
    with pytest.raises(Conflict, match="Confirm"):
        services.resume_process(process=process)


def test_paused_engine_queues_new_runs_and_unpause_releases_them(synced, admin_user):
    services.set_engine_paused(paused=True, user=admin_user)
    process = start("task_demo", {"message": "x"})
    assert process.status == "queued"
    assert run(process).status == "queued"
    services.set_engine_paused(paused=False, user=admin_user)
    assert run(process).status == "completed"


def test_duplicate_claim_is_refused_while_a_lease_is_live(synced):
    from orchestrator.runner import claim

    process = start("task_demo", {"message": "x"})
    assert claim(str(process.pk), "worker-a")
    assert not claim(str(process.pk), "worker-b")
    assert not run_process(str(process.pk))
    Process.objects.filter(pk=process.pk).update(
        lease_expires_at=timezone.now() - datetime.timedelta(seconds=1)
    )
    assert run(process).status == "completed"


@pytest.mark.django_db(transaction=True)
def test_a_claim_of_its_own_skips_its_flush_and_one_in_a_transaction_leaves_it_alone(synced):
    """The claim's statement is made once per shape: alone (a worker's claim, its own
    transaction) it turns synchronous_commit off for itself; inside a caller's transaction
    it must not, since it would turn it off for the caller's commit."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from orchestrator.runner import claim

    if connection.vendor != "postgresql":
        pytest.skip("the one-statement claim is PostgreSQL's")
    alone, inside = start("task_demo", {"message": "x"}), start("task_demo", {"message": "y"})
    for _ in range(2):  # the second time from the statements made the first
        Process.objects.filter(pk__in=[alone.pk, inside.pk]).update(lease_owner="")
        with CaptureQueriesContext(connection) as own:
            assert claim(str(alone.pk), "worker-a")
        with transaction.atomic(), CaptureQueriesContext(connection) as callers:
            assert claim(str(inside.pk), "worker-b")
        assert "synchronous_commit" in own[0]["sql"]
        assert "synchronous_commit" not in callers[0]["sql"]


def test_a_run_handed_off_within_a_task_reuses_its_connection_without_a_health_check(
    monkeypatch,
):
    """StepExecutor: before the first run of a task the thread's connection is health-checked
    (a round trip); a run the task's last one handed off follows at once on the connection
    that run just used and left usable, unchecked. A new task checks again."""
    from django.db import connection, connections

    from orchestrator.timelimits import StepExecutor

    checks = []
    wrapper = type(connections["default"])
    real_is_usable = wrapper.is_usable

    def counted_is_usable(self):
        checks.append(self.alias)
        return real_is_usable(self)

    monkeypatch.setattr(wrapper, "is_usable", counted_is_usable)

    def query() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

    executor = StepExecutor()
    try:
        executor.submit(query).done.wait()  # opens the thread's connection: nothing to check
        executor.submit(query).done.wait()  # a new task
        assert len(checks) == 1
        executor.submit(query, continues_task=True).done.wait()
        assert len(checks) == 1
        executor.submit(query).done.wait()
        assert len(checks) == 2
    finally:
        executor.abandon()
        executor.submit(lambda: None).done.wait()  # its thread closes its connection and ends


def test_a_worker_task_runs_what_its_run_handed_off_as_the_same_task(monkeypatch):
    """run_process_on_worker: the run the task's run handed off to it (runner.hand_off) is
    submitted as continuing the task (its connection not checked again, see the test
    above); the task's own run is not."""
    from orchestrator import runner
    from orchestrator.timelimits import StepExecutor

    submitted = []
    real_submit = StepExecutor.submit

    def recorded_submit(self, func, *args, continues_task=False):
        submitted.append((args[0], continues_task))
        return real_submit(self, func, *args, continues_task=continues_task)

    def execute_run(process_id, run_watch):  # "a" hands off "b", which hands off nothing
        run_watch.handed_off = {"a": "b", "b": None}[process_id]
        run_watch.close()
        return True

    monkeypatch.setattr(StepExecutor, "submit", recorded_submit)
    monkeypatch.setattr(runner, "execute_run", execute_run)
    assert runner.run_process_on_worker("a", queue="core")
    assert submitted == [("a", False), ("b", True)]


def test_a_handed_off_run_that_fails_on_the_worker_goes_to_the_broker(monkeypatch):
    """Its connection was not checked (see above): should its claim fail on a session that
    died meanwhile, the task fails but the run is sent again at once, not left to the sweep.
    A task's own run that fails is not sent again (its message was the delivery)."""
    from django.db import OperationalError

    from orchestrator import runner, services

    sent = []

    def execute_run(process_id, run_watch):  # "a" hands off "b", whose claim fails
        run_watch.close()
        if process_id == "b":
            raise OperationalError("terminating connection due to administrator command")
        run_watch.handed_off = "b"
        return True

    monkeypatch.setattr(runner, "execute_run", execute_run)
    monkeypatch.setattr(services, "send_runs", lambda runs, countdown=None: sent.extend(runs))
    with pytest.raises(OperationalError):
        runner.run_process_on_worker("a", queue="core")
    assert sent == [("b", "core")]
    sent.clear()
    with pytest.raises(OperationalError):
        runner.run_process_on_worker("b", queue="core")
    assert sent == []


def test_migrate_workflows_reports_and_applies_differences(synced):
    from orchestrator.services import sync_workflows, workflow_changes

    assert workflow_changes() == []
    Workflow.objects.filter(name="task_demo").update(description="stale")
    Workflow.objects.create(name="gone_from_code", module="x", function="y")
    changes = {(action, name) for action, name, _ in workflow_changes()}
    assert changes == {("update", "task_demo"), ("remove", "gone_from_code")}
    sync_workflows()
    assert workflow_changes() == []
    # A workflow gone from the code but with runs is kept (audit), hidden, and not reported again.
    kept = Workflow.objects.create(name="gone_with_runs", module="x", function="y")
    Process.objects.create(workflow=kept, status="completed")
    assert [action for action, name, _ in workflow_changes()] == ["remove"]
    sync_workflows()
    kept.refresh_from_db()
    assert kept.removed_at is not None and workflow_changes() == []


def test_time_limits_are_declared_per_step_and_checked():
    from orchestrator.workflow import callback_step, retrystep

    assert step("A")(lambda: None).time_limit is None  # the settings' default applies
    assert step("B", time_limit=2.5)(lambda: None).time_limit == 2.5
    assert retrystep("C", time_limit=30)(lambda: None).time_limit == 30
    action = step("Act", time_limit=7)(lambda: None)
    assert callback_step("Call", action, step("Check")(lambda: None))[0].time_limit == 7
    for wrong in (0, -1, True, "10"):
        with pytest.raises(ValueError, match="time_limit must be a positive number"):
            step("D", time_limit=wrong)


@pytest.mark.django_db(transaction=True)
def test_a_step_that_overruns_its_limit_in_process_is_failed_and_its_late_result_dropped(synced):
    process = run(start("wf_overrun"))
    assert process.status == "failed"
    assert process.failed_reason == "Step 'Overrun' exceeded its time limit of 1 s"
    assert "overran" not in process.state
    assert not WorkerPing.objects.filter(marker=f"{process.pk}:overrun").exists()
    assert step_log(process) == [("Start", "success"), ("Overrun", "failed")]
