"""Load the demo data of the embedded mode; idempotent, so every start may run it.

The engine's part: the built-in demo task workflows exist in the catalogue and the
built-in scheduled tasks have their celery-beat schedules. Other apps add their own
demo data (products, blueprints, ...) by providing a `demo` module with a
`load(stdout) -> None` function; it is called here after the engine's part, once
per app, in INSTALLED_APPS order, and must be idempotent too.
"""

from __future__ import annotations

import importlib
import importlib.util

from django.apps import apps
from django.core.management.base import BaseCommand
from django.db import transaction

from orchestrator import services
from orchestrator.models import Workflow
from orchestrator.schedules import workflow_schedules

DEMO_WORKFLOWS = ("task_demo", "task_demo_with_input")


def load_engine_demo(stdout) -> None:
    """The demo task workflows and at least one scheduled task, synced from the code."""
    changes = services.sync_workflows()
    if changes:
        stdout.write(f"synced {len(changes)} workflow change(s)")
    present = set(Workflow.objects.filter(name__in=DEMO_WORKFLOWS).values_list("name", flat=True))
    schedules = sorted(workflow_schedules())
    if present == set(DEMO_WORKFLOWS):
        stdout.write(f"demo workflows: {', '.join(DEMO_WORKFLOWS)}")
    else:  # the user's own modules only: nothing to demo, and nothing wrong
        stdout.write("engine demo tasks skipped: orchestrator.demo_workflows is not in "
                     "ORCHESTRATOR_WORKFLOW_MODULES")
    stdout.write(f"scheduled tasks: {', '.join(schedules) or 'none'}")


def app_demo_loaders():
    """`(app label, load)` for every installed app with a `demo` module defining `load`."""
    for config in apps.get_app_configs():
        if config.name == "orchestrator":
            continue
        module_name = f"{config.name}.demo"
        try:
            found = importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            continue
        load = getattr(importlib.import_module(module_name), "load", None)
        if callable(load):
            yield config.label, load


class Command(BaseCommand):
    help = "Load (or top up) the demo data: demo workflows, schedules, and each app's demo."

    def handle(self, *args, **options):
        with transaction.atomic():
            load_engine_demo(self.stdout)
        for label, load in app_demo_loaders():
            with transaction.atomic():
                load(self.stdout)
            self.stdout.write(f"demo data of {label} loaded")
        self.stdout.write(self.style.SUCCESS("demo data is loaded"))
