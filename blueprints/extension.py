"""How blueprints plug into the engine (orchestrator.extensions): a run or a step's process
starts with the execution's context (and its secrets in memory only), a process shows the
execution it belongs to, and a step's process stopping moves the execution on."""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Mapping
from typing import Any

from django.db import connection
from django.db.models import Q
from django.urls import reverse

from blueprints import runs, selectors
from blueprints.models import Execution, ExecutionStep, Integration, Secret, StorageBackend
from orchestrator import rows
from orchestrator.crypto import decrypt_json
from orchestrator.extensions import ProcessExtension, Reservation, Touched
from orchestrator.models import Process, Workflow


@functools.cache
def step_links_sql() -> str:
    """One statement for what a step's context needs of its link rows: its integrations,
    secrets and parent resources and its storage backend, each row
    (kind, id, name, kind of service, settings, encrypted value), every column as text
    so the four parts unite on any database."""
    def link(field: str) -> tuple[str, str, str]:
        through = ExecutionStep._meta.get_field(field).remote_field.through
        own = rows.quote(through._meta.get_field("executionstep").column)
        other = next(f for f in through._meta.fields if f.name not in ("id", "executionstep"))
        return rows.table(through), own, rows.quote(other.column)

    def text(expression: str) -> str:
        return f"CAST({expression} AS TEXT)"

    integrations, step_of_integration, integration = link("integrations")
    secrets, step_of_secret, secret = link("secrets")
    parents, step_of_parent, parent = link("parent_resources")
    # Only model metadata (quoted names) is formatted in; every value is a parameter.
    return (
        f"SELECT 'integration', {text('i.id')}, i.name, i.kind, {text('i.settings')}, "  # noqa: S608
        f"i.credentials FROM {rows.table(Integration)} i "
        f"JOIN {integrations} l ON l.{integration} = i.id WHERE l.{step_of_integration} = %s "
        f"UNION ALL SELECT 'secret', {text('x.id')}, x.name, '', '', x.value "
        f"FROM {rows.table(Secret)} x "
        f"JOIN {secrets} l ON l.{secret} = x.id WHERE l.{step_of_secret} = %s "
        f"UNION ALL SELECT 'parent', {text(f'l.{parent}')}, '', '', '', '' FROM {parents} l "
        f"WHERE l.{step_of_parent} = %s "
        f"UNION ALL SELECT 'storage', {text('b.id')}, b.name, b.kind, {text('b.settings')}, '' "
        f"FROM {rows.table(StorageBackend)} b WHERE b.id = %s "
        f"ORDER BY 1, 3, 2"
    )


def step_context(step: ExecutionStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a step's process starts with: public context in its state, secrets and
    credentials apart (encrypted at rest, in memory for its steps only)."""
    with connection.cursor() as cursor:
        cursor.execute(step_links_sql(), [step.pk, step.pk, step.pk, step.storage_id])
        links = cursor.fetchall()
    state: dict[str, Any] = {
        "execution_id": str(step.execution_id),
        "execution_step_id": step.pk,
        "blueprint": step.execution.blueprint.name,
        "template": step.template_snapshot.get("name", ""),
        "source_code_version": step.source_code_version,
        "parent_resource_ids": [str(uuid.UUID(pk)) for kind, pk, *_ in links if kind == "parent"],
        "integrations": [
            {"id": int(pk), "name": name, "kind": service, "settings": json.loads(settings)}
            for kind, pk, name, service, settings, _ in links if kind == "integration"
        ],
        "storage_backend": None,
    }
    for kind, pk, name, service, settings, _ in links:
        if kind == "storage":
            state["storage_backend"] = {"id": int(pk), "name": name, "kind": service,
                                        "settings": json.loads(settings)}
    secrets: dict[str, Any] = {}
    values = {name: decrypt_json(value).get("value", "")
              for kind, _, name, _, _, value in links if kind == "secret"}
    if values:
        secrets["secrets"] = values
    credentials = {name: decrypt_json(value) for kind, _, name, _, _, value in links
                   if kind == "integration" and value}
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
