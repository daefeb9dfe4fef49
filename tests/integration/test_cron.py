"""A cron definition becomes a django-celery-beat periodic task after migrate_workflows, and
beat's own entry for it starts the right workflow on a real worker (sent the way beat sends
it when it is due, instead of waiting for the minute to come)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import DatabaseScheduler

from orchestrator.celery import app
from orchestrator.models import Process
from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_cron_definition_is_a_beat_entry_that_starts_its_workflow(synced, celery_worker):
    PeriodicTask.objects.filter(name="workflow:wf_every_five_minutes").delete()
    call_command("migrate_workflows", "--apply", stdout=io.StringIO())
    task = PeriodicTask.objects.select_related("crontab").get(
        name="workflow:wf_every_five_minutes"
    )
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_month, crontab.month_of_year,
            crontab.day_of_week, str(crontab.timezone)) == ("*/5", "*", "*", "*", "*", "UTC")
    assert task.enabled and task.queue == "internal"
    assert task.task == "orchestrator.start_scheduled_workflow"
    assert json.loads(task.args) == ["wf_every_five_minutes"]

    scheduler = DatabaseScheduler(app=app, lazy=True)
    entry = scheduler.Entry(task, app=app)
    due, next_check = entry.is_due()
    assert next_check <= 5 * 60  # beat looks again within the five minutes
    scheduler.apply_async(entry)  # what beat does once it is due
    wait_for(lambda: Process.objects.filter(workflow__name="wf_every_five_minutes",
                                            status="completed").exists(), timeout=60)
    run = Process.objects.get(workflow__name="wf_every_five_minutes")
    assert run.created_by is None and run.run_name.startswith("wf_every_five_minutes ")
