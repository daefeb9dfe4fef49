"""Cron schedules as django-celery-beat periodic tasks, written through one place, and what
the schedules page and API say about each: the schedule in words, the last run and how it
ended, the next run.

celery-beat writes a periodic task's `last_run_at` and `total_run_count` itself, after every
task it sends (`CELERY_BEAT_SYNC_EVERY = 1`; by default only every three minutes, so a page
said "never" for a sweep that runs every 30 seconds). How the run ended is known only to the
worker that ran it: `record_outcome` (a Celery `task_postrun` handler) keeps it in a
`ScheduleRun` row per periodic task, with the process a workflow schedule started.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from typing import Any

from celery.signals import task_postrun
from cron_descriptor import ExpressionDescriptor, Options
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from orchestrator.models import Process, ScheduleRun

logger = logging.getLogger(__name__)

SCHEDULE_PREFIX = "workflow:"
SWEEP_TASK_NAME = "engine: recovery sweep"


def crontab_for(expression: str) -> CrontabSchedule:
    parts = expression.split()
    if len(parts) != 5:
        raise ValueError(f"cron {expression!r} must have 5 fields (minute hour day month weekday)")
    minute, hour, day_of_month, month_of_year, day_of_week = parts
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        timezone="UTC",
    )
    return schedule


def cron_of(task: PeriodicTask) -> str:
    crontab = task.crontab
    if crontab is None:
        return ""
    return " ".join(
        (
            crontab.minute,
            crontab.hour,
            crontab.day_of_month,
            crontab.month_of_year,
            crontab.day_of_week,
        )
    )


def workflow_schedules() -> dict[str, PeriodicTask]:
    tasks = PeriodicTask.objects.filter(name__startswith=SCHEDULE_PREFIX).select_related("crontab")
    return {task.name.removeprefix(SCHEDULE_PREFIX): task for task in tasks}


def set_workflow_schedule(workflow_name: str, cron: str, queue: str) -> None:
    """Create, change or (with an empty cron) remove a workflow's periodic task."""
    name = SCHEDULE_PREFIX + workflow_name
    if not cron:
        PeriodicTask.objects.filter(name=name).delete()
        return
    task = PeriodicTask.objects.filter(name=name).first() or PeriodicTask(name=name)
    task.task = "orchestrator.start_scheduled_workflow"
    task.args = json.dumps([workflow_name])
    task.crontab = crontab_for(cron)
    task.interval = None
    task.queue = queue
    task.enabled = True
    task.save()


def ensure_sweep_schedule() -> bool:
    """The recovery sweep runs every ORCHESTRATOR_SWEEP_INTERVAL_SECONDS; True if changed."""
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=settings.ORCHESTRATOR_SWEEP_INTERVAL_SECONDS, period=IntervalSchedule.SECONDS
    )
    task = PeriodicTask.objects.filter(name=SWEEP_TASK_NAME).first()
    if task and task.interval_id == interval.pk and task.task == "orchestrator.recovery_sweep":
        return False
    task = task or PeriodicTask(name=SWEEP_TASK_NAME)
    task.task = "orchestrator.recovery_sweep"
    task.interval = interval
    task.crontab = None
    task.queue = "internal"
    task.save()
    return True


# --- what the page and the API say about a schedule ----------------------------------------


def cron_in_words(expression: str) -> str:
    """`0 2 * * *` → "At 02:00" (cron-descriptor); the expression itself if it cannot say."""
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return ExpressionDescriptor(expression, options).get_description()
    except Exception:  # noqa: BLE001 - any expression it cannot read is shown as it is
        return expression


def describe_schedule(task: PeriodicTask) -> str:
    """The schedule in words, with its time zone ("At 02:00 (UTC)", "Every 30 seconds")."""
    if task.crontab_id:
        return f"{cron_in_words(cron_of(task))} ({task.crontab.timezone})"
    if task.interval_id:
        every, period = task.interval.every, task.interval.period
        unit = period[:-1] if every == 1 else period
        return f"Every {every} {unit}"
    if task.solar_id:
        return f"At {task.solar.event} ({task.solar.latitude}, {task.solar.longitude})"
    if task.clocked_id:
        return f"Once, at {task.clocked.clocked_time:%Y-%m-%d %H:%M} UTC"
    return ""


def remaining_until_next_run(
    task: PeriodicTask, now: datetime.datetime
) -> datetime.timedelta | None:
    """How long until celery-beat next sends `task`, negative when it is overdue (None when
    disabled, or when it cannot tell)."""
    if not task.enabled:
        return None
    last = task.last_run_at or task.date_changed or now
    try:
        return task.schedule.remaining_estimate(last)
    except Exception:  # noqa: BLE001 - a schedule beat cannot compute (e.g. solar without ephem)
        return None


def next_run_at(task: PeriodicTask, now: datetime.datetime | None = None):
    """When celery-beat will next send `task`: an overdue task at its next tick, now (None when
    disabled, or when it cannot tell)."""
    now = now or timezone.now()
    remaining = remaining_until_next_run(task, now)
    if remaining is None:
        return None
    # Rounded: the schedule measured `remaining` from its own clock, a moment after `now`.
    when = now + max(remaining, datetime.timedelta(0)) + datetime.timedelta(milliseconds=500)
    return when.replace(microsecond=0)


def is_due(task: PeriodicTask, now: datetime.datetime) -> bool:
    """Whether `task` is overdue: celery-beat sends it at its next tick."""
    remaining = remaining_until_next_run(task, now)
    return remaining is not None and remaining <= datetime.timedelta(0)


def last_outcomes(tasks: list[PeriodicTask]) -> dict[str, ScheduleRun]:
    """The recorded outcome of each task's last run, by task name, in one query."""
    runs = ScheduleRun.objects.filter(name__in=[task.name for task in tasks])
    return {run.name: run for run in runs.select_related("process__workflow")}


# --- recording how a periodic run ended (in the worker) ----------------------------------


def summarise(result: Any) -> str:
    if isinstance(result, BaseException):
        return f"{type(result).__name__}: {result}"
    if isinstance(result, dict):
        return ", ".join(f"{key}: {value}" for key, value in result.items())
    return "" if result is None else str(result)


def started_process(result: Any) -> Process | None:
    """The process a task returned the id of (what `start_scheduled_workflow` returns)."""
    if not isinstance(result, str):
        return None
    try:
        return Process.objects.filter(pk=uuid.UUID(result)).first()
    except ValueError:
        return None


@task_postrun.connect(dispatch_uid="orchestrator.schedule_outcome")
def record_outcome(sender=None, task=None, retval=None, state=None, **kwargs) -> None:
    """After a task celery-beat sent (it carries the periodic task's name): keep how it ended."""
    name = getattr(getattr(task, "request", None), "periodic_task_name", None)
    if not name:
        return
    process = started_process(retval)
    summary = f"started process {process.pk}" if process else summarise(retval)
    try:
        ScheduleRun.objects.update_or_create(
            name=str(name)[:200],
            defaults={
                "finished_at": timezone.now(),
                "succeeded": state == "SUCCESS",
                "summary": summary.replace("\x00", "")[:500],
                "process": process,
            },
        )
    except Exception:  # noqa: BLE001 - bookkeeping must never fail the task itself
        logger.exception("could not record the outcome of periodic task %r", name)
