"""Reads about templates, blueprints and executions that more than one caller needs (the
API, the pages, the admin, the services): what a user may see, the specs the validator
and the planner work on, a blueprint's plan and an execution's steps by level."""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from django import forms
from django.db.models import Count, Prefetch, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from blueprints.models import (
    Blueprint,
    BlueprintTemplate,
    Execution,
    ExecutionStep,
    Integration,
    Secret,
    StepStatus,
    StorageBackend,
    Template,
    WiringRule,
)
from blueprints.plan import (
    NO_VALUE,
    VARIABLE_TYPES,
    Plan,
    Problems,
    Resolved,
    TemplateSpec,
    VariableSpec,
    Wire,
    blueprint_problems,
    missing_required,
    resolve_variables,
)
from orchestrator import registry
from orchestrator.exceptions import NotFound
from orchestrator.forms import form_json_schema, validate_pages
from orchestrator.permissions import user_may
from subscriptions.models import Product, Subscription
from subscriptions.selectors import products_for_user, visible_subscription

logger = logging.getLogger(__name__)
MAX_LOOKUP = 100  # longer than any name or id: not worth a query


# --- what a user may see -----------------------------------------------------------------


def visible(user, perm: str, model) -> QuerySet:
    """Objects of `model` the user may view: the model permission, or guardian grants."""
    if user is None:
        return model.objects.all()
    return get_objects_for_user(user, perm, klass=model, accept_global_perms=True)


def templates_for_user(user) -> QuerySet[Template]:
    return visible(user, "blueprints.view_template", Template).select_related(
        "workflow", "product"
    )


def blueprints_for_user(user) -> QuerySet[Blueprint]:
    return visible(user, "blueprints.view_blueprint", Blueprint)


def blueprints_with_counts(queryset: QuerySet[Blueprint]) -> QuerySet[Blueprint]:
    """Blueprints with their number of templates (`template_count`), by name."""
    return queryset.annotate(template_count=Count("members", distinct=True)).order_by("name")


def executions_with_progress(queryset: QuerySet[Execution]) -> QuerySet[Execution]:
    """Executions with their number of steps (`step_count`) and of done ones (`done_count`)."""
    return queryset.annotate(
        step_count=Count("steps", distinct=True),
        done_count=Count("steps", filter=Q(steps__status=StepStatus.DONE), distinct=True),
    )


def blueprints_using(user, template: Template) -> QuerySet[Blueprint]:
    """The blueprints the user may view that hold `template`."""
    return blueprints_for_user(user).filter(members__template=template).order_by("name")


def integrations_for_user(user) -> QuerySet[Integration]:
    return visible(user, "blueprints.view_integration", Integration)


def secrets_for_user(user) -> QuerySet[Secret]:
    return visible(user, "blueprints.view_secret", Secret)


def storages_for_user(user) -> QuerySet[StorageBackend]:
    return visible(user, "blueprints.view_storagebackend", StorageBackend)


def executions_for_user(user) -> QuerySet[Execution]:
    """Executions the user may view: the model permission, a grant on the execution, a view
    grant on its blueprint, or having created it."""
    queryset = Execution.objects.select_related("blueprint", "created_by")
    if user is None or user_may(user, "blueprints.view_execution"):
        return queryset
    if not user.is_active:
        return queryset.none()
    granted = get_objects_for_user(
        user, "blueprints.view_execution", klass=Execution, accept_global_perms=False
    ).values("pk")
    return queryset.filter(
        Q(pk__in=granted)
        | Q(blueprint__in=blueprints_for_user(user).values("pk"))
        | Q(created_by=user)
    )


def find(queryset: QuerySet, value: Any, what: str, by_name: bool = True):
    """One object by id (or name) from `queryset`; NotFound alike for unknown, invisible and
    malformed references, so nothing hints that a forbidden one exists."""
    text = str(value)
    found = None
    if "\x00" not in text and 0 < len(text) <= MAX_LOOKUP:
        lookup = Q(name=text) if by_name else Q()
        if text.isascii() and text.isdigit():
            lookup = Q(pk=int(text)) | lookup if by_name else Q(pk=int(text))
        if lookup:
            found = queryset.filter(lookup).first()
    if found is None:
        raise NotFound(f"Unknown {what} {text[:MAX_LOOKUP]!r}")
    return found


def products_visible(user) -> QuerySet[Product]:
    return Product.objects.all() if user is None else products_for_user(user)


def find_subscription(user, value: Any) -> Subscription:
    """A subscription by id if the user (None: the system) may view it; else NotFound."""
    if user is not None:
        return visible_subscription(user, value)
    try:
        pk = uuid.UUID(str(value))
    except ValueError:
        raise NotFound(f"Unknown subscription {str(value)[:MAX_LOOKUP]!r}") from None
    found = Subscription.objects.filter(pk=pk).first()
    if found is None:
        raise NotFound(f"Unknown subscription {str(value)[:MAX_LOOKUP]!r}")
    return found


def visible_execution(user, execution_id: Any) -> Execution:
    try:
        pk = uuid.UUID(str(execution_id))
    except ValueError:
        raise NotFound(f"Unknown execution {str(execution_id)[:MAX_LOOKUP]!r}") from None
    execution = executions_for_user(user).filter(pk=pk).first()
    if execution is None:
        raise NotFound(f"Unknown execution {str(execution_id)[:MAX_LOOKUP]!r}")
    return execution


# --- permissions on actions ---------------------------------------------------------------


def may_create_execution(user, blueprint: Blueprint) -> bool:
    """Operators (model permission), or a per-blueprint grant of execute_blueprint."""
    return user_may(user, "blueprints.add_execution") or user_may(
        user, "blueprints.execute_blueprint", blueprint
    )


def may_execute(user, execution: Execution) -> bool:
    return user_may(user, "blueprints.execute_execution", execution) or user_may(
        user, "blueprints.execute_blueprint", execution.blueprint
    )


def may_delete(user, execution: Execution) -> bool:
    return user_may(user, "blueprints.delete_execution", execution)


def may_tear_down(user, execution: Execution) -> bool:
    return user_may(user, "blueprints.teardown_execution", execution)


# --- specs for the validator and the planner ---------------------------------------------


def schema_type(prop: dict[str, Any]) -> str:
    """A form field's JSON type from its schema; an optional field's ["t", "null"] is t."""
    kind = prop.get("type", "any")
    if isinstance(kind, list):
        kinds = [item for item in kind if item != "null"]
        kind = kinds[0] if len(kinds) == 1 else "any"
    return kind if kind in VARIABLE_TYPES else "any"


class Unregistered(Exception):
    """The workflow is not in the code registry."""


def workflow_first_form(workflow_name: str) -> type[forms.BaseForm] | None:
    """The form class of a registered workflow's first input page (None: it takes no
    input, or its form's own code failed); raises Unregistered."""
    definition = registry.get_definition(workflow_name)
    if definition is None:
        raise Unregistered(workflow_name)
    try:
        spec = definition.load()
        return validate_pages(spec.initial_input_form, [], state={}).next_form
    except Exception:  # the form's own code failed: treat it as taking no input
        logger.exception("could not read the input form of %r", workflow_name)
        return None


def workflow_first_form_fields(workflow_name: str) -> dict[str, forms.Field]:
    """The form fields of a workflow's first input page, by name (none when it is not
    registered): the Execute form offers its variables with their choices and bounds."""
    try:
        form_class = workflow_first_form(workflow_name)
    except Unregistered:
        return {}
    return dict(form_class.base_fields) if form_class is not None else {}


@functools.lru_cache(maxsize=512)
def workflow_form_fields(workflow_name: str) -> dict[str, dict[str, Any]] | None:
    """The fields of a registered workflow's first input page: {name: {"type", "required",
    "secret"}}; None when the workflow is not registered. The code registry does not change
    while a process runs, so this is computed once per workflow."""
    try:
        schema = form_json_schema(workflow_first_form(workflow_name))
    except Unregistered:
        return None
    except Exception:  # the form's own code failed: treat it as taking no input
        logger.exception("could not read the input form of %r", workflow_name)
        return {}
    if schema is None:
        return {}
    required = set(schema["required"])
    return {
        name: {
            "type": schema_type(prop),
            "required": name in required,
            "secret": prop.get("format") == "password",
        }
        for name, prop in schema["properties"].items()
    }


def variable_spec(
    data: dict[str, Any], form_fields: dict[str, dict[str, Any]] | None
) -> VariableSpec:
    """A template variable as stored; its type defaults to its form field's."""
    form_field = (form_fields or {}).get(data.get("name", ""), {})
    return VariableSpec(
        name=str(data.get("name", "")),
        type=str(data.get("type") or form_field.get("type", "any")),
        default=data["default"] if "default" in data else NO_VALUE,
        required=bool(data.get("required", False)),
        secret=bool(data.get("secret", False)),
        description=str(data.get("description", "")),
    )


def output_pairs(outputs: list[Any]) -> tuple[tuple[str, str], ...]:
    """Outputs as stored ({"name", "type"}) or as plain keys."""
    pairs = []
    for item in outputs:
        if isinstance(item, dict):
            pairs.append((str(item.get("name", "")), str(item.get("type") or "any")))
        else:
            pairs.append((str(item), "any"))
    return tuple(pairs)


def template_spec_from(snapshot: dict[str, Any], template_id: int) -> TemplateSpec:
    """A spec from a template's stored fields (a row's or an execution step's snapshot)."""
    workflow = snapshot.get("workflow", "")
    form_fields = workflow_form_fields(workflow) if workflow else None
    return TemplateSpec(
        id=template_id,
        name=snapshot.get("name", str(template_id)),
        workflow=workflow,
        variables=tuple(variable_spec(v, form_fields) for v in snapshot.get("variables", [])),
        outputs=output_pairs(snapshot.get("outputs", [])),
    )


SNAPSHOT_FIELDS = {"name": "name", "workflow": "workflow__name", "target": "workflow__target",
                   "product": "product_id", "variables": "variables", "outputs": "outputs",
                   "source_code_versions": "source_code_versions"}


def template_snapshot(template: Template) -> dict[str, Any]:
    """What an execution keeps of a template: it never changes after creation."""
    return {
        "name": template.name,
        "workflow": template.workflow.name,
        "target": template.workflow.target,
        "product": template.product_id,
        "variables": template.variables,
        "outputs": template.outputs,
        "source_code_versions": template.source_code_versions,
    }


def template_spec(template: Template) -> TemplateSpec:
    return template_spec_from(template_snapshot(template), template.pk)


def wires_from_snapshot(snapshot: list[dict[str, Any]]) -> list[Wire]:
    return [
        Wire(rule["source_template"], rule["source_output"], rule["target_template"],
             rule["target_variable"])
        for rule in snapshot
    ]


def blueprint_with_relations(queryset: QuerySet[Blueprint]) -> QuerySet[Blueprint]:
    return queryset.prefetch_related(
        Prefetch(
            "members",
            queryset=BlueprintTemplate.objects.select_related("template__workflow"),
        ),
        "wiring",
    )


@dataclass
class BlueprintParts:
    """A blueprint's templates, wiring and defaults as the validator and planner take them,
    and each template's snapshot (what an execution keeps of it), by template id."""

    templates: list[TemplateSpec]
    wiring: list[Wire]
    defaults: dict[int, dict[str, Any]]
    snapshots: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def names(self) -> dict[int, str]:
        return {template.id: template.name for template in self.templates}


def blueprint_parts(blueprint: Blueprint) -> BlueprintParts:
    """Two queries of plain values, however many templates: the members with their
    templates' fields, then the wiring (thousands of templates plan in well under a second)."""
    columns = ["template_id", "default_variables",
               *(f"template__{column}" for column in SNAPSHOT_FIELDS.values())]
    snapshots: dict[int, dict[str, Any]] = {}
    defaults: dict[int, dict[str, Any]] = {}
    members = BlueprintTemplate.objects.filter(blueprint=blueprint).order_by("order", "pk")
    for template_id, default_variables, *values in members.values_list(*columns):
        snapshots[template_id] = dict(zip(SNAPSHOT_FIELDS, values, strict=True))
        defaults[template_id] = default_variables or {}
    wiring = WiringRule.objects.filter(blueprint=blueprint).order_by("pk").values_list(
        "source_template_id", "source_output", "target_template_id", "target_variable"
    )
    return BlueprintParts(
        templates=[template_spec_from(snapshot, template_id)
                   for template_id, snapshot in snapshots.items()],
        wiring=[Wire(*rule) for rule in wiring],
        defaults=defaults,
        snapshots=snapshots,
    )


# --- the plan ------------------------------------------------------------------------------


@dataclass
class PlannedStep:
    """One template in a plan: its level, what it waits for, its resolved variables."""

    template: TemplateSpec
    position: int
    upstream: list[str]
    resolved: dict[str, Resolved]
    missing: list[str]

    @property
    def variables(self) -> dict[str, dict[str, Any]]:
        return {name: value.as_dict() for name, value in self.resolved.items()}


@dataclass
class BlueprintPlan:
    """What a blueprint would do: levels of planned steps, edges, and problems."""

    steps: list[PlannedStep]
    edges: list[dict[str, Any]]
    problems: Problems
    plan: Plan | None

    @property
    def levels(self) -> list[list[PlannedStep]]:
        levels: list[list[PlannedStep]] = []
        for step in self.steps:
            while len(levels) <= step.position:
                levels.append([])
            levels[step.position].append(step)
        return levels

    @property
    def level_names(self) -> list[list[str]]:
        return [[step.template.name for step in level] for level in self.levels]


def edges_of(wiring: list[Wire], names: dict[int, str]) -> list[dict[str, Any]]:
    return [
        {
            "source_template": wire.source,
            "source_name": names.get(wire.source, str(wire.source)),
            "source_output": wire.output,
            "target_template": wire.target,
            "target_name": names.get(wire.target, str(wire.target)),
            "target_variable": wire.variable,
        }
        for wire in wiring
    ]


def plan_parts(
    parts: BlueprintParts, overrides: dict[int, dict[str, Any]] | None = None
) -> BlueprintPlan:
    """The plan of validated parts with the given runtime overrides; wired values are
    pending (their steps have not run)."""
    problems, plan = blueprint_problems(parts.templates, parts.wiring, parts.defaults)
    names = parts.names
    steps: list[PlannedStep] = []
    if plan is not None:
        by_id = {template.id: template for template in parts.templates}
        wires_to: dict[int, list[Wire]] = {}
        for wire in parts.wiring:
            wires_to.setdefault(wire.target, []).append(wire)
        for template_id in plan.order:
            template = by_id[template_id]
            resolved = resolve_variables(
                template,
                overrides=(overrides or {}).get(template_id, {}),
                wires=wires_to.get(template_id, []),
                outputs={},
                blueprint_defaults=parts.defaults.get(template_id, {}),
                names=names,
            )
            steps.append(PlannedStep(
                template=template,
                position=plan.position[template_id],
                upstream=[names[u] for u in plan.upstream[template_id]],
                resolved=resolved,
                missing=missing_required(template, resolved),
            ))
    return BlueprintPlan(steps=steps, edges=edges_of(parts.wiring, names), problems=problems,
                         plan=plan)


def blueprint_plan(
    blueprint: Blueprint, overrides: dict[int, dict[str, Any]] | None = None
) -> BlueprintPlan:
    """A blueprint's plan (levels, edges, resolved variables with provenance) before executing."""
    return plan_parts(blueprint_parts(blueprint), overrides)


# --- executions ---------------------------------------------------------------------------


def execution_steps(execution: Execution) -> QuerySet[ExecutionStep]:
    return execution.steps.select_related(
        "template", "resource__product", "process__workflow", "teardown_process", "storage"
    ).prefetch_related("parent_resources", "integrations", "secrets")


def execution_levels(execution: Execution) -> list[list[ExecutionStep]]:
    """The execution's steps grouped by level (position), in topological order."""
    levels: list[list[ExecutionStep]] = []
    for step in execution_steps(execution):
        while len(levels) <= step.position:
            levels.append([])
        levels[step.position].append(step)
    return levels


def execution_edges(execution: Execution) -> list[dict[str, Any]]:
    names = {
        template_id: snapshot.get("name", str(template_id))
        for template_id, snapshot in execution.steps.values_list("template_id", "template_snapshot")
    }
    return edges_of(wires_from_snapshot(execution.wiring_snapshot), names)
