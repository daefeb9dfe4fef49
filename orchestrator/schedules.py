"""Cron schedules as django-celery-beat periodic tasks, written through one place."""

from __future__ import annotations

import json

from django.conf import settings
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

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
