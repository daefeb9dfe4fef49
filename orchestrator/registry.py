"""The code registry: definitions found in ORCHESTRATOR_WORKFLOW_MODULES at start-up."""

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


def load_workflow_modules() -> None:
    """Import each configured module and register its module-level `WORKFLOWS` list."""
    for module_name in settings.ORCHESTRATOR_WORKFLOW_MODULES:
        module = importlib.import_module(module_name)
        for definition in getattr(module, "WORKFLOWS", []):
            register(definition)


def get_definition(name: str) -> WorkflowDefinition | None:
    return _definitions.get(name)


def all_definitions() -> list[WorkflowDefinition]:
    return sorted(_definitions.values(), key=lambda definition: definition.name)
