"""The workflow catalogue (DESIGN §4.4): every runnable thing is one WorkflowDefinition."""

from __future__ import annotations

import dataclasses
import importlib
from enum import StrEnum
from typing import Any

from orchestrator.targets import Target


class WorkflowType(StrEnum):
    """Also the Celery queue a workflow's runs go to, so each type scales apart."""

    CORE = "core"
    USER = "user"
    INTERNAL = "internal"


class ConcurrencyLimitStrategy(StrEnum):
    ENQUEUE = "enqueue"
    CANCEL_NEW = "cancel_new"


@dataclasses.dataclass(frozen=True)
class WorkflowTag:
    name: str
    description: str = ""


@dataclasses.dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    module: str
    function: str
    type: WorkflowType = WorkflowType.CORE
    description: str = ""
    target: Target | None = None
    is_task: bool = False
    product_types: tuple[str, ...] = ()
    tags: tuple[WorkflowTag | str, ...] = ()
    cron: str = ""
    concurrency_limit: int | None = None
    concurrency_limit_strategy: ConcurrencyLimitStrategy = ConcurrencyLimitStrategy.ENQUEUE

    def load(self) -> Any:
        """Import the workflow object (a WorkflowSpec from `@workflow`)."""
        module = importlib.import_module(self.module)
        return getattr(module, self.function)

    @property
    def tag_names(self) -> list[str]:
        return [tag.name if isinstance(tag, WorkflowTag) else str(tag) for tag in self.tags]

    def catalogue_row(self) -> dict[str, Any]:
        """The values the `Workflow` row must hold for this definition."""
        spec = self.load()
        target = self.target or getattr(spec, "target", Target.SYSTEM)
        return {
            "type": str(self.type),
            "module": self.module,
            "function": self.function,
            "description": self.description or getattr(spec, "description", ""),
            "target": str(target),
            "is_task": self.is_task,
            "tags": self.tag_names,
            "cron": self.cron,
            "concurrency_limit": self.concurrency_limit,
            "concurrency_limit_strategy": str(self.concurrency_limit_strategy),
            "removed_at": None,
        }


class WorkflowClient:
    """Infrahub-style entry points for starting runs from code."""

    def submit_workflow(
        self,
        workflow: str,
        parameters: dict[str, Any] | None = None,
        context: dict[str, Any] | None = None,
    ) -> str:
        """Start a run and return its id without waiting (fire and forget)."""
        from orchestrator.services import start_process

        context = context or {}
        process = start_process(
            workflow_name=workflow,
            input_pages=[parameters or {}],
            user=context.get("user"),
            tags=context.get("tags", ()),
        )
        return str(process.id)


def get_workflow() -> WorkflowClient:
    return WorkflowClient()
