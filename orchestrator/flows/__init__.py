"""Flows and tasks (DESIGN §4.5): Prefect's programming model on the engine's processes.

    from orchestrator.flows import flow, task, task_input_hash, exponential_backoff

    @task(retries=3, retry_delay_seconds=exponential_backoff(2))
    def fetch(url: str) -> dict: ...

    @flow(flow_run_name="sync-{site}")
    def sync_site(site: str) -> int:
        return len([fetch(url) for url in urls(site)])

A flow run is a `Process`, each task run a `ProcessStep`; see docs/flows.md.
"""

from orchestrator.flows.children import ChildRunFailed
from orchestrator.flows.engine import (
    FlowRunTimeout,
    SubmittedTasksFailed,
    TaskRunTimeout,
    get_run_context,
)
from orchestrator.flows.flows import Flow, flow
from orchestrator.flows.futures import TaskFuture, TaskFutureList
from orchestrator.flows.options import exponential_backoff, task_input_hash
from orchestrator.flows.runners import CeleryTaskRunner, TaskRunFailed, ThreadPoolTaskRunner
from orchestrator.flows.states import FlowRun, State, StateType, TaskRun, TaskRunContext
from orchestrator.flows.tasks import Task, task, unmapped

__all__ = [
    "CeleryTaskRunner",
    "ChildRunFailed",
    "Flow",
    "FlowRun",
    "FlowRunTimeout",
    "State",
    "StateType",
    "SubmittedTasksFailed",
    "Task",
    "TaskFuture",
    "TaskFutureList",
    "TaskRun",
    "TaskRunContext",
    "TaskRunFailed",
    "TaskRunTimeout",
    "ThreadPoolTaskRunner",
    "exponential_backoff",
    "flow",
    "get_run_context",
    "task",
    "task_input_hash",
    "unmapped",
]
