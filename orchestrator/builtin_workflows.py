"""The engine's built-in tasks, always registered (by `OrchestratorConfig.ready`), whatever
ORCHESTRATOR_WORKFLOW_MODULES says."""

from __future__ import annotations

from orchestrator import services, tokens
from orchestrator.catalogue import WorkflowDefinition, WorkflowType
from orchestrator.workflow import State, StepList, done, init, step, workflow


@step("Resume waiting processes")
def resume_waiting() -> State:
    return {"resumed": services.resume_waiting_processes()}


@workflow("Retry the processes waiting for a retry whose time has come")
def task_resume_workflows() -> StepList:
    return init >> resume_waiting >> done


@step("Delete old task runs")
def delete_old_task_runs() -> State:
    return {"deleted": services.clean_up_task_runs()}


@step("Delete expired idempotency keys")
def delete_expired_idempotency_keys() -> State:
    return {"idempotency_keys_deleted": services.clean_up_idempotency_keys()}


@step("Delete lapsed API tokens")
def delete_lapsed_api_tokens() -> State:
    return {"api_tokens_deleted": tokens.clean_up_tokens()}


@workflow("Delete old task runs, expired idempotency keys and lapsed API tokens")
def task_clean_up_tasks() -> StepList:
    return (
        init >> delete_old_task_runs >> delete_expired_idempotency_keys
        >> delete_lapsed_api_tokens >> done
    )


def _builtin(name: str, description: str = "", **options) -> WorkflowDefinition:
    return WorkflowDefinition(
        name=name,
        module=__name__,
        function=name,
        description=description,
        is_task=True,
        **options,
    )


WORKFLOWS = [
    _builtin("task_resume_workflows", type=WorkflowType.INTERNAL, cron="*/5 * * * *"),
    _builtin("task_clean_up_tasks", type=WorkflowType.INTERNAL, cron="30 3 * * *"),
]
