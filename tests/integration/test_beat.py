"""A real celery-beat and a real worker: beat writes each periodic task's last run and run
count as it sends it (not minutes later), and the worker records how each run ended —
the sweep's result, the process a workflow schedule started, a start that was refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from orchestrator.models import Process, ScheduleRun
from orchestrator.schedules import SCHEDULE_PREFIX, SWEEP_TASK_NAME
from tests.conftest import ROOT, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def beat(worker_env, tmp_path):
    """A celery-beat process on the test database and the real broker."""
    command = [
        sys.executable, "-m", "celery", "-A", "orchestrator", "beat", "--loglevel", "WARNING",
        "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
        "--schedule", str(tmp_path / "beat-schedule"), "--pidfile", "",
    ]
    proc = subprocess.Popen(command, cwd=ROOT, env=worker_env, start_new_session=True)
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=20)


def every_second(name: str, task: str, args: list, queue: str) -> PeriodicTask:
    interval, _ = IntervalSchedule.objects.get_or_create(every=1, period="seconds")
    return PeriodicTask.objects.update_or_create(
        name=name,
        defaults={"task": task, "args": json.dumps(args), "interval": interval,
                  "crontab": None, "queue": queue, "enabled": True},
    )[0]


def test_beat_records_each_run_and_the_worker_its_outcome(synced, celery_worker, beat):
    PeriodicTask.objects.exclude(name=SWEEP_TASK_NAME).update(enabled=False)  # no cron noise
    sweep = every_second(SWEEP_TASK_NAME, "orchestrator.recovery_sweep", [], "internal")
    every_second(SCHEDULE_PREFIX + "wf_audited", "orchestrator.start_scheduled_workflow",
                 ["wf_audited"], "core")
    every_second(SCHEDULE_PREFIX + "wf_refused", "orchestrator.start_scheduled_workflow",
                 ["wf_refused"], "core")

    # Beat's own bookkeeping, written as it sends (its default waited three minutes).
    sent = wait_for(lambda: PeriodicTask.objects.filter(
        pk=sweep.pk, last_run_at__isnull=False, total_run_count__gte=2).first(), timeout=45)
    assert sent.total_run_count >= 2

    outcome = wait_for(lambda: ScheduleRun.objects.filter(name=SWEEP_TASK_NAME).first())
    assert outcome.succeeded and outcome.summary.startswith("requeued: ")
    started = wait_for(lambda: ScheduleRun.objects.filter(
        name=SCHEDULE_PREFIX + "wf_audited", process__isnull=False).first())
    assert started.succeeded and started.process.workflow.name == "wf_audited"
    wait_for(lambda: Process.objects.filter(workflow__name="wf_audited",
                                            status="completed").exists())
    refused = wait_for(lambda: ScheduleRun.objects.filter(
        name=SCHEDULE_PREFIX + "wf_refused").first())
    assert not refused.succeeded and "PreconditionFailed" in refused.summary
    assert refused.process is None
