"""The schedules page and API say when each periodic task last ran, how that ended (for a
workflow schedule: the run it started, linked, with its status), when it runs next, and the
schedule in words (issue 7, item 21)."""

from __future__ import annotations

import datetime
from types import SimpleNamespace

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from orchestrator.models import ScheduleRun
from orchestrator.schedules import (
    SWEEP_TASK_NAME,
    cron_in_words,
    next_run_at,
    record_outcome,
)
from tests.factories import user_with_role
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


def beat_sent(name: str, ago: datetime.timedelta, count: int) -> PeriodicTask:
    """What celery-beat writes when it sends a periodic task."""
    PeriodicTask.objects.filter(name=name).update(
        last_run_at=timezone.now() - ago, total_run_count=count
    )
    return PeriodicTask.objects.get(name=name)


def worker_ran(name: str, retval, state: str = "SUCCESS") -> None:
    """What a worker's task_postrun signal reports after a task celery-beat sent."""
    task = SimpleNamespace(request=SimpleNamespace(periodic_task_name=name))
    record_outcome(task=task, retval=retval, state=state)


@pytest.mark.parametrize(("cron", "words"), [
    ("0 2 * * *", "At 02:00"), ("*/5 * * * *", "Every 5 minutes"),
    ("0 3 * * 1-5", "At 03:00, Monday through Friday"), ("not a cron", "not a cron"),
])
def test_cron_in_words(cron, words):
    assert cron_in_words(cron) == words


def test_next_run_follows_the_schedule(synced):
    sweep = beat_sent(SWEEP_TASK_NAME, datetime.timedelta(seconds=10), 5)
    now = timezone.now()
    assert abs((next_run_at(sweep, now) - (sweep.last_run_at + datetime.timedelta(seconds=30)))
               .total_seconds()) < 1
    nightly = PeriodicTask.objects.get(name="workflow:task_validate_products")  # 0 2 * * *
    when = next_run_at(nightly, now)
    assert (when.hour, when.minute) == (2, 0) and now < when <= now + datetime.timedelta(days=1)
    nightly.enabled = False
    assert next_run_at(nightly, now) is None


def test_the_page_shows_last_run_outcome_next_run_and_words(client, synced):
    viewer = user_with_role("viewer")
    beat_sent(SWEEP_TASK_NAME, datetime.timedelta(seconds=12), 42)
    worker_ran(SWEEP_TASK_NAME, {"requeued": 0})
    process = run(start("task_clean_up_tasks"))
    # Sent at its latest 03:30 (UTC) (its cron is 30 3 * * *), so its next run is ahead,
    # whatever the time of day the test runs at (sent "2 hours ago", it was overdue from
    # 03:30 to 05:30).
    now = timezone.now()
    latest = now.replace(hour=3, minute=30, second=0, microsecond=0)
    if latest > now:
        latest -= datetime.timedelta(days=1)
    beat_sent("workflow:task_clean_up_tasks", now - latest, 3)
    worker_ran("workflow:task_clean_up_tasks", str(process.pk))
    beat_sent("workflow:task_validate_products", datetime.timedelta(hours=5), 1)
    worker_ran("workflow:task_validate_products", RuntimeError("refused: engine busy"),
               state="FAILURE")
    client.force_login(viewer)
    page = client.get("/schedules/").content.decode()
    sweep = section(page, SWEEP_TASK_NAME)
    assert "Every 30 seconds" in sweep and "42 runs" in sweep and "requeued: 0" in sweep
    assert "never" not in page.lower().replace("never (disabled)", "")
    cleanup = section(page, "workflow:task_clean_up_tasks")
    assert f'href="/processes/{process.pk}/"' in cleanup and "badge-completed" in cleanup
    assert "3 runs" in cleanup and "in " in cleanup
    validate = section(page, "workflow:task_validate_products")
    assert "At 02:00 (UTC)" in validate and "0 2 * * *" in validate
    assert "RuntimeError: refused: engine busy" in validate and "badge-failed" in validate


def test_an_overdue_schedule_is_due_now_not_in_the_past(client, synced):
    """A schedule whose next run has passed (beat sends it at its next tick) says "due now"."""
    beat_sent(SWEEP_TASK_NAME, datetime.timedelta(minutes=5), 7)  # every 30 s: 4.5 min overdue
    beat_sent("workflow:task_clean_up_tasks", datetime.timedelta(seconds=1), 1)  # 03:30 daily
    client.force_login(user_with_role("viewer"))
    page = client.get("/schedules/").content.decode()
    sweep = section(page, SWEEP_TASK_NAME)
    assert ">due now</time>" in sweep and sweep.count(" ago</time>") == 1  # the last run
    assert "due now" not in section(page, "workflow:task_clean_up_tasks")


def section(page: str, name: str) -> str:
    """The table row of one schedule."""
    task = PeriodicTask.objects.get(name=name)
    start_at = page.index(f'id="schedule-{task.pk}"')
    return page[start_at:page.index("</tr>", start_at)]


def test_the_api_gives_the_same_and_hides_runs_the_user_may_not_see(api, synced):
    process = run(start("task_clean_up_tasks"))
    worker_ran("workflow:task_clean_up_tasks", str(process.pk))
    worker_ran(SWEEP_TASK_NAME, {"requeued": 2})
    viewer, nobody_much = user_with_role("viewer"), user_with_role(None)
    nobody_much.user_permissions.add(Permission.objects.get(codename="view_periodictask"))
    rows = {row["name"]: row for row in api(viewer).get("/api/schedules/").json()["results"]}
    cleanup = rows["workflow:task_clean_up_tasks"]
    assert cleanup["last_outcome"]["process"] == str(process.pk)
    assert cleanup["last_outcome"]["process_status"] == "completed"
    assert cleanup["schedule_in_words"].startswith("At ") and cleanup["next_run_at"]
    assert rows[SWEEP_TASK_NAME]["last_outcome"]["summary"] == "requeued: 2"
    assert rows[SWEEP_TASK_NAME]["schedule_in_words"] == "Every 30 seconds"
    hidden = {row["name"]: row for row in api(nobody_much).get("/api/schedules/").json()[
        "results"]}["workflow:task_clean_up_tasks"]["last_outcome"]
    assert hidden["process"] is None and str(process.pk) not in str(hidden)


def test_outcomes_of_tasks_beat_did_not_send_are_not_recorded(synced):
    record_outcome(task=SimpleNamespace(request=SimpleNamespace()), retval=1, state="SUCCESS")
    worker_ran("x" * 300, "y\x00" * 400)
    assert ScheduleRun.objects.get().name == "x" * 200
