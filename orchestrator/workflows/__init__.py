"""`LazyWorkflowInstance`: register a step-list workflow by module and function name."""

from __future__ import annotations

from orchestrator.catalogue import WorkflowDefinition, WorkflowType
from orchestrator.registry import register


def LazyWorkflowInstance(  # noqa: N802 - the contract's name (orchestrator-core's)
    module: str,
    function: str,
    *,
    name: str | None = None,
    is_task: bool = False,
    type: WorkflowType = WorkflowType.CORE,  # noqa: A002
) -> WorkflowDefinition:
    """Register a workflow without importing its module now; returns its definition."""
    return register(
        WorkflowDefinition(
            name=name or function, module=module, function=function, is_task=is_task, type=type
        )
    )


__all__ = ["LazyWorkflowInstance"]
