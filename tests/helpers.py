"""Small helpers the unit tests share: start a workflow and run it in-process."""

from __future__ import annotations

from orchestrator import services
from orchestrator.models import Process
from orchestrator.runner import run_process


def start(name: str, *pages: dict, user=None, **kwargs) -> Process:
    return services.start_process(workflow_name=name, input_pages=list(pages), user=user, **kwargs)


def run(process: Process) -> Process:
    """Run the process as far as it goes, in this test's thread; return it reloaded."""
    run_process(str(process.pk))
    process.refresh_from_db()
    return process


def start_on(subscription, workflow: str, *pages: dict) -> Process:
    return services.start_process(
        workflow_name=workflow, subscription=subscription.pk, input_pages=list(pages)
    )
