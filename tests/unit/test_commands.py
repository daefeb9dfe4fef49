"""The management commands: start_workflow and migrate_workflows, with good and bad input."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from orchestrator.models import Process, Workflow
from orchestrator.schedules import SWEEP_TASK_NAME

pytestmark = pytest.mark.django_db


def run_command(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_start_workflow_stores_a_process_with_the_input(synced):
    output = run_command("start_workflow", "task_demo", "--input", '{"message": "cli"}',
                         "--tag", "branch:main")
    process_id, status = output.split()
    process = Process.objects.get(pk=process_id)
    assert status == "created" and process.state["message"] == "cli"
    assert list(process.tag_rows.values_list("name", flat=True)) == ["branch:main"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no_such_workflow"], "no_such_workflow"),
        (["task_demo", "--input", "{not json"], "not valid JSON"),
        (["task_demo", "--input", '{"message": "' + "x" * 300 + '"}'], "message"),
        (["task_demo", "--input", '"a string"'], "list"),
        (["task_demo", "--input", '{"message": "hi", "step_seconds": NaN}'], "finite"),
        (["task_demo", "--input", '{"message": 1e400}'], "finite"),
        (["task_demo", "--input", "[" * 100_000 + "]" * 100_000], "JSON"),
        (["task_demo", "--input", '{"message": true}'], "message"),
        (["wf_refused"], "refused"),
    ],
)
def test_start_workflow_refuses_bad_input_clearly_and_stores_nothing(synced, args, message):
    with pytest.raises(CommandError, match=message):
        run_command("start_workflow", *args)
    assert Process.objects.count() == 0


def test_migrate_workflows_check_apply_and_schedules(synced):
    assert "in sync" in run_command("migrate_workflows", "--check")
    Workflow.objects.filter(name="task_demo").delete()
    PeriodicTask.objects.filter(name="workflow:task_resume_workflows").delete()
    with pytest.raises(CommandError, match="not applied"):
        run_command("migrate_workflows", "--check")
    output = run_command("migrate_workflows", "--apply")
    assert "add      task_demo" in output and "schedule task_resume_workflows" in output
    assert "in sync" in run_command("migrate_workflows", "--check")
    scheduled = PeriodicTask.objects.get(name="workflow:task_resume_workflows")
    assert scheduled.task == "orchestrator.start_scheduled_workflow"
    assert scheduled.crontab.minute == "*/5"
    sweep = PeriodicTask.objects.get(name=SWEEP_TASK_NAME)
    assert sweep.task == "orchestrator.recovery_sweep" and sweep.interval is not None
