"""Celery tasks: thin wrappers around the runner and the services (ids in, JSON only)."""

from __future__ import annotations

from celery import shared_task

from orchestrator import runner, services
from orchestrator.exceptions import RunCancelled


@shared_task(name="orchestrator.run_process", acks_late=True, ignore_result=True)
def run_process_task(process_id: str) -> None:
    runner.run_process_on_worker(
        process_id, queue=(run_process_task.request.delivery_info or {}).get("routing_key")
    )


@shared_task(name="orchestrator.run_flow_task_run", acks_late=True, ignore_result=True)
def run_flow_task_run(payload: dict) -> None:
    """A task run a flow submitted to its CeleryTaskRunner (orchestrator.flows.runners)."""
    from orchestrator.flows.runners import run_sent

    run_sent(payload)


@shared_task(name="orchestrator.recovery_sweep", ignore_result=True)
def recovery_sweep_task() -> dict[str, int]:
    """What celery-beat sends every ORCHESTRATOR_SWEEP_INTERVAL_SECONDS (its result is the
    outcome the schedules page shows)."""
    return {"requeued": services.recover_processes()}


@shared_task(name="orchestrator.start_scheduled_workflow", ignore_result=True)
def start_scheduled_workflow_task(workflow_name: str) -> str:
    """What a cron schedule sends: start the workflow as the system, with no input. A run
    cancelled by a `cancel_new` limit (the previous one still runs) is stored as such."""
    try:
        return str(services.start_process(workflow_name=workflow_name, input_pages=[{}]).pk)
    except RunCancelled as cancelled:
        return str(cancelled.process.pk)


@shared_task(name="orchestrator.ping")
def ping_task(marker: str) -> str:
    """Proves a worker is consuming: writes a marker row the sender can look for."""
    from orchestrator.models import WorkerPing

    WorkerPing.objects.create(marker=marker[:100])
    return marker
