"""The code registry: every workflow definition the code holds, filled at start-up.

Built-in workflows are registered by the app that owns them (the engine's tasks by
`OrchestratorConfig.ready`, the subscription workflows by `SubscriptionsConfig.ready`), so
they are always there; ORCHESTRATOR_WORKFLOW_MODULES names the user's own modules only.
"""

from __future__ import annotations

import importlib

from django.conf import settings

from orchestrator.catalogue import WorkflowDefinition

_definitions: dict[str, WorkflowDefinition] = {}


def register(definition: WorkflowDefinition) -> WorkflowDefinition:
    existing = _definitions.get(definition.name)
    if existing is not None and existing != definition:
        raise ValueError(f"workflow {definition.name!r} is defined twice, differently")
    _definitions[definition.name] = definition
    return definition


def register_module(module_name: str) -> None:
    """Import a module and register its module-level `WORKFLOWS` list."""
    module = importlib.import_module(module_name)
    for definition in getattr(module, "WORKFLOWS", []):
        # A flow may be listed itself: it knows its own definition.
        to_definition = getattr(definition, "to_definition", None)
        register(to_definition() if to_definition is not None else definition)


def load_workflow_modules() -> None:
    """Register the user's modules, named by ORCHESTRATOR_WORKFLOW_MODULES."""
    for module_name in settings.ORCHESTRATOR_WORKFLOW_MODULES:
        register_module(module_name)


def get_definition(name: str) -> WorkflowDefinition | None:
    return _definitions.get(name)


def is_flow(name: str) -> bool:
    """Whether the workflow is a flow (orchestrator.flows: it runs its own turns)."""
    definition = _definitions.get(name)
    if definition is None:
        return False
    try:
        return getattr(definition.load(), "execute_turn", None) is not None
    except Exception:  # noqa: BLE001 - code that no longer loads is not a flow to show
        return False


def all_definitions() -> list[WorkflowDefinition]:
    return sorted(_definitions.values(), key=lambda definition: definition.name)
