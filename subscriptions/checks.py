"""System checks of the usability settings (`manage.py check`, and every start-up).

A name that matches no registered workflow, or a lifecycle that does not exist, would be
ignored without a word; these checks say so instead.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register

from orchestrator import registry
from orchestrator.models import WorkflowTarget
from subscriptions.models import SubscriptionLifecycle

# Each setting that names workflows, with the shape it must have.
NAMED_SETTINGS = {
    "WF_USABLE_MAP": dict,
    "WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS": dict,
    "WF_USABLE_WHILE_OUT_OF_SYNC": list,
    "DEFAULT_PRODUCT_WORKFLOWS": list,
}


def _names(value: Any) -> list[str]:
    return [str(name) for name in value] if isinstance(value, dict | list | tuple | set) else []


@register()
def check_usability_settings(app_configs=None, **kwargs) -> list:
    problems: list = []
    targets = set(WorkflowTarget.values)
    for setting, shape in NAMED_SETTINGS.items():
        value = getattr(settings, setting)
        if not isinstance(value, shape if shape is dict else list | tuple | set):
            problems.append(Error(f"{setting} must be a {shape.__name__}", id="subscriptions.E001"))
            continue
        for name in _names(value):
            if registry.get_definition(name) is not None:
                continue
            if setting == "WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS" and name in targets:
                problems.append(Warning(
                    f"{setting} key {name!r} is a workflow target: the setting is keyed by "
                    "workflow name, as in orchestrator-core",
                    hint=f"Name the workflows, e.g. {{'modify_node': True}}. The target key "
                         f"still applies to the {name} workflows the setting does not name.",
                    id="subscriptions.W002",
                ))
                continue
            problems.append(Warning(
                f"{setting} names {name!r}, which is no registered workflow: it has no effect",
                hint="Check the name, or add its module to ORCHESTRATOR_WORKFLOW_MODULES.",
                id="subscriptions.W001",
            ))
    usable_map = getattr(settings, "WF_USABLE_MAP", {})
    if isinstance(usable_map, dict):
        for name, lifecycles in usable_map.items():
            unknown = sorted(set(_names(lifecycles)) - set(SubscriptionLifecycle.values))
            if unknown or not isinstance(lifecycles, list | tuple | set):
                problems.append(Error(
                    f"WF_USABLE_MAP[{name!r}] must list lifecycles of "
                    f"{', '.join(SubscriptionLifecycle.values)}"
                    + (f"; unknown: {', '.join(unknown)}" if unknown else ""),
                    id="subscriptions.E002",
                ))
    return problems
