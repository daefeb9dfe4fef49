"""How blueprints plug into the engine (orchestrator.extensions): a run or a step's process
starts with the execution's context (and its secrets in memory only), a process shows the
execution it belongs to, and a step's process stopping moves the execution on."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Q
from django.urls import reverse

from blueprints import runs, selectors
from blueprints.models import Execution, ExecutionStep
from orchestrator.crypto import decrypt_json
from orchestrator.extensions import ProcessExtension, Reservation, Touched
from orchestrator.models import Process, Workflow


def step_context(step: ExecutionStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a step's process starts with: public context in its state, secrets and
    credentials apart (encrypted at rest, in memory for its steps only)."""
    integrations = list(step.integrations.all())
    state: dict[str, Any] = {
        "execution_id": str(step.execution_id),
        "execution_step_id": step.pk,
        "blueprint": step.execution.blueprint.name,
        "template": step.template_snapshot.get("name", ""),
        "source_code_version": step.source_code_version,
        "parent_resource_ids": [str(pk) for pk in
                                step.parent_resources.values_list("pk", flat=True)],
        "integrations": [
            {"id": item.pk, "name": item.name, "kind": item.kind, "settings": item.settings}
            for item in integrations
        ],
        "storage_backend": None,
    }
    if step.storage is not None:
        state["storage_backend"] = {
            "id": step.storage.pk, "name": step.storage.name, "kind": step.storage.kind,
            "settings": step.storage.settings,
        }
    secrets: dict[str, Any] = {}
    values = {item.name: decrypt_json(item.value).get("value", "") for item in step.secrets.all()}
    if values:
        secrets["secrets"] = values
    credentials = {item.name: decrypt_json(item.credentials)
                   for item in integrations if item.credentials}
    if credentials:
        secrets["integration_credentials"] = credentials
    return state, secrets


class BlueprintExtension(ProcessExtension):
    start_targets = ("execution", "execution_step")

    def reserve(
        self, *, workflow: Workflow, targets: Mapping[str, Any], pages: list[Any], user=None
    ) -> Reservation | None:
        if targets.get("execution_step") is not None:
            step = targets["execution_step"]  # the step being started, with its execution
            state, secrets = step_context(step)
            return Reservation(state=state, secrets=secrets)
        if targets.get("execution") is not None:
            return Reservation(state={"execution_id": str(targets["execution"])})
        return None

    def touched(self, user, process: Process) -> list[Touched]:
        # The links first, visibility only when there are any: most processes are no
        # blueprint's, and working out what a user may see costs some milliseconds.
        steps = list(
            ExecutionStep.objects.filter(process=process).select_related("execution__blueprint")
        )
        executions = list(Execution.objects.filter(Q(run=process) | Q(teardown_run=process))
                          .select_related("blueprint"))
        if not steps and not executions:
            return []
        visible = set(selectors.executions_for_user(user).filter(
            pk__in={step.execution_id for step in steps} | {run.pk for run in executions}
        ).values_list("pk", flat=True))
        items = [
            Touched(
                kind="execution_step", heading="Blueprint execution", id=str(step.execution_id),
                label=f"{step.execution.blueprint.name} · {step.template_snapshot.get('name')}",
                url=reverse("execution-detail", args=[step.execution_id]), status=step.status,
            )
            for step in steps if step.execution_id in visible
        ]
        items += [
            Touched(
                kind="execution", heading="Blueprint execution", id=str(execution.pk),
                label=f"{execution.blueprint.name} execution",
                url=reverse("execution-detail", args=[execution.pk]), status=execution.status,
            )
            for execution in executions if execution.pk in visible
        ]
        return items

    def process_stopped(self, process: Process, status: str) -> None:
        runs.process_stopped(process, status)
