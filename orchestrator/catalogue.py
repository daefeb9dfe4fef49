"""The workflow catalogue (DESIGN §4.4): every runnable thing is one WorkflowDefinition."""

from __future__ import annotations

import dataclasses
import importlib
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from orchestrator.targets import Target

if TYPE_CHECKING:
    from orchestrator.client import WorkflowClient


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
    """One runnable thing of the catalogue, as Infrahub's catalogue declares them.

    `product_types` names the product types whose products offer the workflow (linked by
    `migrate_workflows`); `cron` (five fields, UTC) schedules it; `concurrency_limit` caps
    its runs holding a worker at once, and `concurrency_limit_strategy` says what a run
    beyond the cap does: wait its turn (`enqueue`) or be cancelled at once (`cancel_new`).
    """

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

    def __post_init__(self) -> None:
        """Refuse a malformed definition at import time, naming the field."""

        def fail(field: str, problem: str) -> None:
            raise ValueError(f"workflow {self.name!r}: {field} {problem}")

        if not isinstance(self.name, str) or not self.name.strip() or len(self.name) > 255:
            raise ValueError(f"a workflow name must be 1 to 255 characters, not {self.name!r}")
        for field, enum in (("type", WorkflowType), ("target", Target),
                            ("concurrency_limit_strategy", ConcurrencyLimitStrategy)):
            value = getattr(self, field)
            if value is None and field == "target":
                continue
            try:
                object.__setattr__(self, field, enum(value))
            except ValueError:
                fail(field, f"must be one of {', '.join(enum)}, not {value!r}")
        for field in ("product_types", "tags"):
            value = getattr(self, field)
            if isinstance(value, str) or not isinstance(value, list | tuple):
                fail(field, f"must be a list or tuple, not {value!r}")
            object.__setattr__(self, field, tuple(value))
        if not all(isinstance(name, str) and name for name in self.product_types):
            fail("product_types", "must hold product type names")
        limit = self.concurrency_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            fail("concurrency_limit", f"must be a whole number of at least 1, not {limit!r}")
        if not isinstance(self.cron, str) or (self.cron and len(self.cron.split()) != 5):
            fail("cron", f"must have 5 fields (minute hour day month weekday), not {self.cron!r}")

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
            "product_types": list(self.product_types),
            "tags": self.tag_names,
            "cron": self.cron,
            "concurrency_limit": self.concurrency_limit,
            "concurrency_limit_strategy": str(self.concurrency_limit_strategy),
            "removed_at": None,
        }


def get_workflow() -> WorkflowClient:
    """Infrahub's entry point for starting runs from code (orchestrator.client)."""
    from orchestrator.client import WorkflowClient

    return WorkflowClient()
