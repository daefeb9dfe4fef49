"""Every write on templates, blueprints, executions, integrations, secrets and storage
backends: one function per user-visible action, called alike by the API, the pages, the
admin, the import command and the Celery tasks. Each checks the permission, validates with
the one validator (`blueprints.plan`) and refuses with an error naming the field and the
rule; nothing is written when anything is refused."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from blueprints import selectors
from blueprints.models import (
    MAX_NAME,
    Blueprint,
    BlueprintTemplate,
    Execution,
    ExecutionStatus,
    ExecutionStep,
    Integration,
    IntegrationKind,
    Secret,
    StepStatus,
    StorageBackend,
    StorageKind,
    TeardownStatus,
    Template,
    WiringRule,
)
from blueprints.plan import (
    NAME_PATTERN,
    VARIABLE_TYPES,
    Problems,
    Wire,
    blueprint_problems,
    template_problems,
    values_problems,
)
from orchestrator import services as engine
from orchestrator.audit import record_action
from orchestrator.crypto import decrypt_json, encrypt_json
from orchestrator.exceptions import Conflict, FormInvalid, NotFound
from orchestrator.models import TERMINAL_STATUSES, Workflow
from orchestrator.permissions import require
from subscriptions.selectors import create_refusal

MAX_TEMPLATES = 5000
MAX_WIRES = 20000
MAX_ITEMS = 200  # variables, outputs, versions, integrations, secrets per object
MAX_TEXT = 10000
MAX_REASONS = 5
VARIABLE_KEYS = {"name", "default", "required", "secret", "type", "description"}


class DryRun(Exception):
    """Raised to roll back a save that was only meant to be checked."""


def check(save, **kwargs: Any) -> None:
    """Run a save service with every one of its checks, and write nothing: a form (the
    admin's, a page's) validates with exactly the rules the save applies."""
    try:
        with transaction.atomic():
            save(**kwargs)
            raise DryRun
    except DryRun:
        pass


def invalid(field: str, message: str) -> FormInvalid:
    return FormInvalid(message, {field: [message]})


def refuse(problems: Problems, what: str) -> None:
    """Raise the problems (if any) as one FormInvalid naming every field and rule."""
    if not problems:
        return
    messages = problems.messages
    more = f" (and {len(messages) - MAX_REASONS} more)" if len(messages) > MAX_REASONS else ""
    raise FormInvalid(f"{what}: " + "; ".join(messages[:MAX_REASONS]) + more, problems.by_field)


# --- shapes ------------------------------------------------------------------------------


def clean_text(data: Mapping[str, Any], field: str, *, required: bool = False,
               max_length: int = MAX_TEXT, default: str = "") -> str:
    value = data.get(field, default)
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise invalid(field, f"{field} must be a string")
    value = value.strip() if max_length <= MAX_NAME else value
    if required and not value:
        raise invalid(field, f"{field} is required")
    if len(value) > max_length:
        raise invalid(field, f"{field} is longer than {max_length} characters")
    if "\x00" in value:
        raise invalid(field, f"{field} must not contain NUL characters")
    return value


def clean_list(data: Mapping[str, Any], field: str, max_items: int = MAX_ITEMS) -> list[Any]:
    value = data.get(field)
    value = [] if value is None else value
    if not isinstance(value, list):
        raise invalid(field, f"{field} must be a list")
    if len(value) > max_items:
        raise invalid(field, f"{field} has more than {max_items} items")
    return value


def clean_mapping(data: Mapping[str, Any], field: str, max_items: int = MAX_TEMPLATES) -> dict:
    value = data.get(field)
    value = {} if value is None else value
    if not isinstance(value, Mapping):
        raise invalid(field, f"{field} must be an object")
    if len(value) > max_items:
        raise invalid(field, f"{field} has more than {max_items} entries")
    return dict(value)


def clean_variables(raw: list[Any]) -> list[dict[str, Any]]:
    variables = []
    for index, item in enumerate(raw):
        where = f"variable {index + 1}"
        if not isinstance(item, Mapping):
            raise invalid("variables", f"{where} must be an object")
        unknown = set(item) - VARIABLE_KEYS
        if unknown:
            raise invalid("variables", f"{where}: unknown key(s) {', '.join(sorted(unknown))} "
                                       f"(known: {', '.join(sorted(VARIABLE_KEYS))})")
        name = item.get("name")
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise invalid("variables", f"{where}: name must be an identifier "
                                       "(letters, digits, underscores)")
        variable: dict[str, Any] = {"name": name}
        for flag in ("required", "secret"):
            if not isinstance(item.get(flag, False), bool):
                raise invalid("variables", f"variable {name!r}: {flag} must be true or false")
            variable[flag] = item.get(flag, False)
        if item.get("type") not in (None, "", *VARIABLE_TYPES):
            raise invalid("variables", f"variable {name!r}: unknown type {item['type']!r} "
                                       f"(one of {', '.join(VARIABLE_TYPES)})")
        if item.get("type"):
            variable["type"] = item["type"]
        description = item.get("description", "")
        if not isinstance(description, str) or len(description) > 1000:
            raise invalid("variables", f"variable {name!r}: description must be a string of "
                                       "at most 1000 characters")
        if description:
            variable["description"] = description
        if "default" in item:
            variable["default"] = item["default"]
        variables.append(variable)
    return variables


def clean_outputs(raw: list[Any]) -> list[dict[str, str]]:
    outputs = []
    for index, item in enumerate(raw):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise invalid("outputs", f"output {index + 1} must be a key or "
                                     '{"name": key, "type": type}')
        if set(item) - {"name", "type"}:
            raise invalid("outputs", f"output {item['name']!r}: only name and type are known")
        output_type = item.get("type") or "any"
        if output_type not in VARIABLE_TYPES:
            raise invalid("outputs", f"output {item['name']!r}: unknown type {output_type!r} "
                                     f"(one of {', '.join(VARIABLE_TYPES)})")
        outputs.append({"name": item["name"], "type": output_type})
    return outputs


def clean_versions(raw: list[Any]) -> list[str]:
    versions = []
    for item in raw:
        if not isinstance(item, str) or not item.strip() or len(item) > MAX_NAME or "\x00" in item:
            raise invalid("source_code_versions",
                          f"a source code version must be a non-empty string of at most "
                          f"{MAX_NAME} characters")
        if item in versions:
            raise invalid("source_code_versions", f"version {item!r} is listed twice")
        versions.append(item)
    return versions


# --- templates ---------------------------------------------------------------------------


def template_workflow(name: str) -> Workflow:
    """The catalogue row of a template's workflow: a create workflow or a task."""
    workflow = Workflow.objects.filter(name=name, removed_at__isnull=True).first()
    if workflow is None:
        raise invalid("workflow", f"unregistered workflow: {name!r} is not a registered "
                                  "workflow")
    if workflow.target not in ("create", "system"):
        raise invalid("workflow", f"workflow {name!r} is a {workflow.target} workflow: a "
                                  "template provisions a resource with a create workflow or a "
                                  "task")
    return workflow


def template_product(user, workflow: Workflow, value: Any):
    if workflow.target != "create":
        if value not in (None, ""):
            raise invalid("product", f"{workflow.name} creates no subscription: a template of "
                                     "it has no product")
        return None
    if value in (None, ""):
        raise invalid("product", f"{workflow.name} is a create workflow: give the product it "
                                 "makes a subscription of")
    try:
        product = selectors.find(selectors.products_visible(user), value, "product")
    except NotFound as error:
        raise invalid("product", error.message) from None
    refusal = create_refusal(workflow, product)
    if refusal:
        raise invalid("product", refusal)
    return product


def save_template(*, user=None, template: Template | None = None,
                  data: Mapping[str, Any]) -> Template:
    """Create or change a template; `data` may be partial when changing one. Refused when the
    template is wrong on its own or would break a blueprint it belongs to."""
    require(user, "blueprints.change_template" if template else "blueprints.add_template",
            template)
    if not isinstance(data, Mapping):
        raise invalid("detail", "a template must be an object")
    current = template_data(template) if template else {}
    merged = {**current, **data}
    name = clean_text(merged, "name", required=True, max_length=MAX_NAME)
    workflow = template_workflow(clean_text(merged, "workflow", required=True,
                                            max_length=255))
    product = template_product(user, workflow, merged.get("product"))
    fields = {
        "name": name,
        "description": clean_text(merged, "description"),
        "workflow": workflow,
        "product": product,
        "variables": clean_variables(clean_list(merged, "variables")),
        "outputs": clean_outputs(clean_list(merged, "outputs")),
        "source_code_versions": clean_versions(clean_list(merged, "source_code_versions")),
    }
    if Template.objects.filter(name=name).exclude(pk=template.pk if template else None).exists():
        raise invalid("name", f"a template named {name!r} exists already")
    with transaction.atomic():
        row = template or Template(created_by=user if user and user.is_authenticated else None)
        for key, value in fields.items():
            setattr(row, key, value)
        spec = selectors.template_spec_from(
            {**fields, "workflow": workflow.name}, row.pk or 0
        )
        refuse(template_problems(spec, selectors.workflow_form_fields(workflow.name)),
               f"Template {name} is invalid")
        if row.pk:
            Template.objects.select_for_update().filter(pk=row.pk).first()
            for blueprint in Blueprint.objects.filter(members__template=row).distinct():
                parts = selectors.blueprint_parts(blueprint)
                parts.templates = [spec if t.id == row.pk else t for t in parts.templates]
                problems, _ = blueprint_problems(parts.templates, parts.wiring, parts.defaults)
                refuse(problems, f"The change would break blueprint {blueprint.name}")
        row.full_clean(exclude=["workflow", "product", "created_by"])
        created = row.pk is None
        row.save()
        record_action("template.create" if created else "template.change", user=user,
                      target=row)
    return row


def template_data(template: Template) -> dict[str, Any]:
    """A template's fields as a payload (what export writes and a partial change starts from)."""
    return {
        "name": template.name,
        "description": template.description,
        "workflow": template.workflow.name,
        "product": template.product.name if template.product_id else None,
        "variables": template.variables,
        "outputs": template.outputs,
        "source_code_versions": template.source_code_versions,
    }


def delete_template(*, user=None, template: Template) -> None:
    require(user, "blueprints.delete_template", template)
    if template.memberships.exists():
        names = ", ".join(sorted({m.blueprint.name for m in template.memberships.all()[:5]}))
        raise Conflict(f"Template {template.name} is used by blueprint(s) {names}: remove it "
                       "from them first")
    if template.steps.exists():
        raise Conflict(f"Template {template.name} has executions: it is kept for their audit")
    with transaction.atomic():
        record_action("template.delete", user=user, target=template)
        template.delete()


# --- blueprints --------------------------------------------------------------------------


def resolve_templates(user, refs: list[Any]) -> list[Template]:
    """The templates named (by id or name), in the given order, if the user may view each;
    one query however many there are."""
    ids, names = set(), set()
    for ref in refs:
        text = str(ref)
        if not isinstance(ref, str | int) or isinstance(ref, bool) or len(text) > MAX_NAME \
                or "\x00" in text:
            raise invalid("templates", f"unknown template {text[:MAX_NAME]!r}")
        if text.isascii() and text.isdigit():
            ids.add(int(text))
        names.add(text)
    rows = selectors.templates_for_user(user).filter(Q(pk__in=ids) | Q(name__in=names))
    by_id = {row.pk: row for row in rows}
    by_name = {row.name: row for row in by_id.values()}
    found = []
    for ref in refs:
        text = str(ref)
        row = by_name.get(text) or (by_id.get(int(text)) if text.isascii() and text.isdigit()
                                    else None)
        if row is None:
            raise invalid("templates", f"unknown template {text!r}")
        found.append(row)
    return found


def member_lookup(names: dict[int, str]) -> dict[str, int]:
    """How payloads name a blueprint's templates ({id: name}): by name, or by id."""
    return {**{str(template_id): template_id for template_id in names},
            **{name: template_id for template_id, name in names.items()}}


def member_ref(value: Any, lookup: dict[str, int]) -> int | None:
    """A template of the blueprint named by id or name (None if it is not one of them)."""
    return lookup.get(str(value))


def clean_wiring(raw: list[Any], rows: dict[str, int], problems: Problems) -> list[Wire]:
    keys = ("source_template", "source_output", "target_template", "target_variable")
    wires = []
    for index, rule in enumerate(raw):
        if not isinstance(rule, Mapping) or set(rule) != set(keys) or not all(
            isinstance(rule[key], str | int) and not isinstance(rule[key], bool) for key in keys
        ):
            problems.add("wiring", f"rule {index + 1} must have exactly "
                                   f"{', '.join(keys)} (strings or ids)")
            continue
        source, target = member_ref(rule["source_template"], rows), member_ref(
            rule["target_template"], rows
        )
        if source is None or target is None:
            missing = rule["source_template"] if source is None else rule["target_template"]
            problems.add("wiring", f"template not in blueprint: rule {index + 1} names "
                                   f"{str(missing)[:MAX_NAME]!r}, not one of the blueprint's "
                                   "templates")
            continue
        if len(str(rule["source_output"])) > MAX_NAME or len(str(rule["target_variable"])) \
                > MAX_NAME:
            problems.add("wiring", f"rule {index + 1}: names are at most {MAX_NAME} characters")
            continue
        wires.append(Wire(source, str(rule["source_output"]), target,
                          str(rule["target_variable"])))
    return wires


def clean_defaults(raw: Mapping[str, Any], rows: dict[str, int],
                   problems: Problems) -> dict[int, dict[str, Any]]:
    defaults: dict[int, dict[str, Any]] = {}
    for ref, values in raw.items():
        template_id = member_ref(ref, rows)
        if template_id is None:
            problems.add("default_variables", f"template not in blueprint: defaults given for "
                                              f"{str(ref)[:MAX_NAME]!r}")
        elif not isinstance(values, Mapping):
            problems.add("default_variables", f"the defaults of {ref} must be an object")
        else:
            defaults[template_id] = dict(values)
    return defaults


@dataclass
class CleanBlueprint:
    """A blueprint payload that passed every rule, ready to be written."""

    name: str
    description: str
    enabled: bool
    templates: list[Template]
    wiring: list[Wire]
    defaults: dict[int, dict[str, Any]]


def validate_blueprint(*, user=None, blueprint: Blueprint | None = None,
                       data: Mapping[str, Any]) -> CleanBlueprint:
    """Every rule a blueprint's save applies, nothing written: a cycle (named), self-wiring,
    unknown outputs or variables, type mismatches, wrong defaults, templates the user may
    not view. Forms (admin, pages) call it to show the same refusals as the API."""
    require(user, "blueprints.change_blueprint" if blueprint else "blueprints.add_blueprint",
            blueprint)
    if not isinstance(data, Mapping):
        raise invalid("detail", "a blueprint must be an object")
    missing = tuple(key for key in ("templates", "default_variables", "wiring")
                    if key not in data)
    current = blueprint_data(blueprint, fields=missing) if blueprint else {}
    merged = {**current, **data}
    name = clean_text(merged, "name", required=True, max_length=MAX_NAME)
    enabled = merged.get("enabled", True)
    if not isinstance(enabled, bool):
        raise invalid("enabled", "enabled must be true or false")
    refs = clean_list(merged, "templates", MAX_TEMPLATES)
    rows = resolve_templates(user, refs)
    if len({row.pk for row in rows}) != len(rows):
        raise invalid("templates", "duplicate template: a template is listed twice")
    problems = Problems()
    names = member_lookup({row.pk: row.name for row in rows})
    wires = clean_wiring(clean_list(merged, "wiring", MAX_WIRES), names, problems)
    defaults = clean_defaults(clean_mapping(merged, "default_variables"), names, problems)
    refuse(problems, f"Blueprint {name} is invalid")
    specs = [selectors.template_spec(row) for row in rows]
    problems, _ = blueprint_problems(specs, wires, defaults)
    refuse(problems, f"Blueprint {name} is invalid")
    if Blueprint.objects.filter(name=name).exclude(pk=blueprint.pk if blueprint else None
                                                   ).exists():
        raise invalid("name", f"a blueprint named {name!r} exists already")
    return CleanBlueprint(name=name, description=clean_text(merged, "description"),
                          enabled=enabled, templates=rows, wiring=wires, defaults=defaults)


def save_blueprint(*, user=None, blueprint: Blueprint | None = None,
                   data: Mapping[str, Any]) -> Blueprint:
    """Create or change a blueprint (partial `data` when changing), refused by
    `validate_blueprint`'s rules, naming them; written in one transaction."""
    clean = validate_blueprint(user=user, blueprint=blueprint, data=data)
    with transaction.atomic():
        row = blueprint or Blueprint(created_by=user if user and user.is_authenticated else None)
        row.name, row.enabled, row.description = clean.name, clean.enabled, clean.description
        row.full_clean(exclude=["created_by"])
        row.save()
        row.members.all().delete()
        row.wiring.all().delete()
        BlueprintTemplate.objects.bulk_create(
            BlueprintTemplate(blueprint=row, template=template, order=index,
                              default_variables=clean.defaults.get(template.pk, {}))
            for index, template in enumerate(clean.templates)
        )
        WiringRule.objects.bulk_create(
            WiringRule(blueprint=row, source_template_id=wire.source, source_output=wire.output,
                       target_template_id=wire.target, target_variable=wire.variable)
            for wire in clean.wiring
        )
        record_action("blueprint.change" if blueprint else "blueprint.create", user=user,
                      target=row, detail={"templates": len(clean.templates),
                                          "wiring": len(clean.wiring)})
    return row


def blueprint_data(blueprint: Blueprint, by_name: bool = False,
                   fields: tuple[str, ...] = ("templates", "default_variables", "wiring"),
                   ) -> dict[str, Any]:
    """A blueprint's fields as a payload, templates by id (or by name for export); only the
    relations named in `fields` are read (plain values: thousands of templates are cheap)."""
    data: dict[str, Any] = {"name": blueprint.name, "description": blueprint.description,
                            "enabled": blueprint.enabled}
    if not fields:
        return data
    members = list(BlueprintTemplate.objects.filter(blueprint=blueprint).order_by("order", "pk")
                   .values_list("template_id", "template__name", "default_variables"))
    ref = {template_id: (name if by_name else template_id) for template_id, name, _ in members}
    if "templates" in fields:
        data["templates"] = [ref[template_id] for template_id, _, _ in members]
    if "default_variables" in fields:
        data["default_variables"] = {ref[template_id]: values
                                     for template_id, _, values in members if values}
    if "wiring" in fields:
        rules = WiringRule.objects.filter(blueprint=blueprint).order_by("pk").values_list(
            "source_template_id", "source_output", "target_template_id", "target_variable")
        data["wiring"] = [
            {"source_template": ref[source], "source_output": output,
             "target_template": ref[target], "target_variable": variable}
            for source, output, target, variable in rules
        ]
    return data


def set_blueprint_enabled(*, user=None, blueprint: Blueprint, enabled: bool) -> Blueprint:
    require(user, "blueprints.change_blueprint", blueprint)
    with transaction.atomic():
        Blueprint.objects.filter(pk=blueprint.pk).update(enabled=enabled,
                                                         updated_at=timezone.now())
        blueprint.enabled = enabled
        record_action("blueprint.enable" if enabled else "blueprint.disable", user=user,
                      target=blueprint)
    return blueprint


def delete_blueprint(*, user=None, blueprint: Blueprint) -> None:
    require(user, "blueprints.delete_blueprint", blueprint)
    if blueprint.executions.exists():
        raise Conflict(f"Blueprint {blueprint.name} has executions: delete them first (they "
                       "are its audit trail)")
    with transaction.atomic():
        record_action("blueprint.delete", user=user, target=blueprint)
        blueprint.delete()


# --- executions --------------------------------------------------------------------------


class ExecutionInputs:
    """An execution's overrides and shared choices, validated against its blueprint."""

    def __init__(self, user, parts: selectors.BlueprintParts, data: Mapping[str, Any]) -> None:
        if not isinstance(data, Mapping):
            raise invalid("detail", "an execution must be an object")
        unknown = set(data) - {"variable_overrides", "source_code_versions", "parent_overrides",
                               "integrations", "secrets", "storage"}
        if unknown:
            raise invalid("detail", f"unknown field(s): {', '.join(sorted(unknown))}")
        rows = member_lookup(parts.names)
        by_id = {spec.id: spec for spec in parts.templates}
        problems = Problems()
        self.overrides: dict[int, dict[str, Any]] = {}
        self.secret_overrides: dict[int, dict[str, Any]] = {}
        for ref, values in clean_mapping(data, "variable_overrides").items():
            template_id = member_ref(ref, rows)
            if template_id is None:
                problems.add("variable_overrides", f"template not in blueprint: "
                                                   f"{str(ref)[:MAX_NAME]!r}")
                continue
            spec = by_id[template_id]
            found = values_problems(spec, values, "override", secrets_allowed=True)
            for problem in found:
                problems.add("variable_overrides", problem)
            if not found:
                secret = {v.name for v in spec.variables if v.secret}
                self.overrides[template_id] = {k: v for k, v in values.items() if k not in secret}
                self.secret_overrides[template_id] = {k: v for k, v in values.items()
                                                      if k in secret}
        self.versions: dict[int, str] = {}
        for ref, version in clean_mapping(data, "source_code_versions").items():
            template_id = member_ref(ref, rows)
            if template_id is None:
                problems.add("source_code_versions", f"template not in blueprint: "
                                                     f"{str(ref)[:MAX_NAME]!r}")
                continue
            known = parts.snapshots[template_id].get("source_code_versions", [])
            if not isinstance(version, str) or version not in known:
                problems.add("source_code_versions",
                             f"unknown version: {parts.names[template_id]} has no source "
                             f"code version {str(version)[:MAX_NAME]!r} (versions: "
                             f"{', '.join(known) or 'none'})")
            else:
                self.versions[template_id] = version
        self.parents: dict[int, list[Any]] = {}
        for ref, ids in clean_mapping(data, "parent_overrides").items():
            template_id = member_ref(ref, rows)
            if template_id is None:
                problems.add("parent_overrides", f"template not in blueprint: "
                                                 f"{str(ref)[:MAX_NAME]!r}")
                continue
            if not isinstance(ids, list) or len(ids) > MAX_ITEMS:
                problems.add("parent_overrides", f"the parents of {ref} must be a list of "
                                                 "subscription ids")
                continue
            found_parents = []
            for value in ids:
                try:
                    found_parents.append(selectors.find_subscription(user, value).pk)
                except NotFound as error:
                    problems.add("parent_overrides", error.message)
            self.parents[template_id] = found_parents
        self.integrations = self.choices(user, data, "integrations",
                                         selectors.integrations_for_user, problems)
        self.secrets = self.choices(user, data, "secrets", selectors.secrets_for_user, problems)
        self.storage = None
        if data.get("storage") not in (None, ""):
            try:
                self.storage = selectors.find(selectors.storages_for_user(user), data["storage"],
                                              "storage backend")
            except NotFound as error:
                problems.add("storage", error.message)
        refuse(problems, "Invalid execution")

    @staticmethod
    def choices(user, data, field: str, visible, problems: Problems) -> list[Any]:
        """Objects named by id or name, only among those the user may view."""
        refs = data.get(field)
        refs = [] if refs is None else refs
        if not isinstance(refs, list) or len(refs) > MAX_ITEMS:
            problems.add(field, f"{field} must be a list of at most {MAX_ITEMS} ids or names")
            return []
        found = []
        for ref in refs:
            try:
                found.append(selectors.find(visible(user), ref, field.rstrip("s")))
            except NotFound as error:
                problems.add(field, error.message)
        return list({item.pk: item for item in found}.values())


def require_execute_blueprint(user, blueprint: Blueprint) -> None:
    if not selectors.may_create_execution(user, blueprint):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You may not execute this blueprint.")


def current_parts(blueprint: Blueprint) -> selectors.BlueprintParts:
    parts = selectors.blueprint_parts(blueprint)
    problems, _ = blueprint_problems(parts.templates, parts.wiring, parts.defaults)
    if problems:
        raise Conflict(f"Blueprint {blueprint.name} is not valid any more: "
                       + "; ".join(problems.messages[:MAX_REASONS]))
    return parts


def plan_execution(*, user=None, blueprint: Blueprint,
                   data: Mapping[str, Any]) -> selectors.BlueprintPlan:
    """The plan an execution with these inputs would run (nothing stored)."""
    parts = current_parts(blueprint)
    inputs = ExecutionInputs(user, parts, data)
    return selectors.plan_parts(parts, merge_overrides(inputs))


def merge_overrides(inputs: ExecutionInputs) -> dict[int, dict[str, Any]]:
    keys = set(inputs.overrides) | set(inputs.secret_overrides)
    return {key: {**inputs.overrides.get(key, {}), **inputs.secret_overrides.get(key, {})}
            for key in keys}


def require_values(plan: selectors.BlueprintPlan) -> None:
    missing = [f"{step.template.name}.{name}" for step in plan.steps for name in step.missing]
    if missing:
        message = ("missing value: required variable(s) without a value, a default or a wire: "
                   + ", ".join(missing[:20]))
        raise FormInvalid(message, {"variable_overrides": [message]})


def create_execution(*, user=None, blueprint: Blueprint,
                     data: Mapping[str, Any] | None = None) -> Execution:
    """A pending execution of the blueprint: its steps planned (levels, resolved variables
    with provenance) and the wiring snapshot taken, never to change."""
    require_execute_blueprint(user, blueprint)
    if not blueprint.enabled:
        raise Conflict(f"Blueprint {blueprint.name} is disabled: enable it to execute it")
    parts = current_parts(blueprint)
    inputs = ExecutionInputs(user, parts, data or {})
    plan = selectors.plan_parts(parts, merge_overrides(inputs))
    require_values(plan)
    names = parts.names
    with transaction.atomic():
        execution = Execution.objects.create(
            blueprint=blueprint,
            wiring_snapshot=[
                {"source_template": w.source, "source_name": names[w.source],
                 "source_output": w.output, "target_template": w.target,
                 "target_name": names[w.target], "target_variable": w.variable}
                for w in parts.wiring
            ],
            variable_overrides={str(k): v for k, v in inputs.overrides.items() if v},
            secret_overrides=encrypt_json({str(k): v for k, v in inputs.secret_overrides.items()
                                           if v}),
            source_code_versions={str(k): v for k, v in inputs.versions.items()},
            parent_overrides={str(k): [str(p) for p in v] for k, v in inputs.parents.items()},
            storage=inputs.storage,
            created_by=user if user and user.is_authenticated else None,
        )
        execution.integrations.set(inputs.integrations)
        execution.secrets.set(inputs.secrets)
        steps = ExecutionStep.objects.bulk_create(
            ExecutionStep(
                execution=execution,
                template_id=planned.template.id,
                template_snapshot={
                    **parts.snapshots[planned.template.id],
                    "blueprint_defaults": parts.defaults.get(planned.template.id, {}),
                },
                position=planned.position,
                order=index,
                upstream=plan.plan.upstream[planned.template.id],
                resolved_variables=planned.variables,
                source_code_version=inputs.versions.get(planned.template.id, ""),
                storage=inputs.storage,
            )
            for index, planned in enumerate(plan.steps)
        )
        link_step_choices(steps, inputs)
        record_action("execution.create", user=user, target=execution,
                      detail={"blueprint": blueprint.name, "steps": len(steps)})
    return execution


def link_step_choices(steps: list[ExecutionStep], inputs: ExecutionInputs) -> None:
    """Each step's integrations, secrets and parent resources (rows of the M2M tables)."""
    through = ExecutionStep.integrations.through
    through.objects.filter(executionstep__in=steps).delete()
    through.objects.bulk_create(
        through(executionstep=step, integration=item)
        for step in steps for item in inputs.integrations
    )
    through = ExecutionStep.secrets.through
    through.objects.filter(executionstep__in=steps).delete()
    through.objects.bulk_create(
        through(executionstep=step, secret=item) for step in steps for item in inputs.secrets
    )
    through = ExecutionStep.parent_resources.through
    through.objects.filter(executionstep__in=steps).delete()
    through.objects.bulk_create(
        through(executionstep=step, subscription_id=pk)
        for step in steps for pk in inputs.parents.get(step.template_id, [])
    )


EDITABLE = (ExecutionStatus.PENDING, ExecutionStatus.ERROR)


def update_execution(*, user=None, execution: Execution, data: Mapping[str, Any]) -> Execution:
    """Change the overrides and choices while the execution is pending or in error; the
    steps not done yet are planned again (done ones keep what they ran with)."""
    if not selectors.may_execute(user, execution):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You may not change this execution.")
    with transaction.atomic():
        steps = list(ExecutionStep.objects.select_for_update().filter(execution=execution)
                     .order_by("pk"))
        execution = Execution.objects.select_for_update().select_related("blueprint").get(
            pk=execution.pk
        )
        if execution.status not in EDITABLE:
            raise Conflict(f"Execution is {execution.status}: overrides can be changed only "
                           "while it is pending or in error")
        parts = snapshot_parts(execution, steps)
        current = execution_data(execution)
        inputs = ExecutionInputs(user, parts, {**current, **data})
        overrides = merge_overrides(inputs)
        execution.variable_overrides = {str(k): v for k, v in inputs.overrides.items() if v}
        execution.secret_overrides = encrypt_json(
            {str(k): v for k, v in inputs.secret_overrides.items() if v}
        )
        execution.source_code_versions = {str(k): v for k, v in inputs.versions.items()}
        execution.parent_overrides = {str(k): [str(p) for p in v]
                                      for k, v in inputs.parents.items()}
        execution.storage = inputs.storage
        plan = selectors.plan_parts(parts, overrides)
        require_values(plan)
        execution.save()
        execution.integrations.set(inputs.integrations)
        execution.secrets.set(inputs.secrets)
        planned = {step.template.id: step for step in plan.steps}
        open_steps = [step for step in steps if step.status != StepStatus.DONE]
        for step in open_steps:
            step.resolved_variables = planned[step.template_id].variables
            step.source_code_version = inputs.versions.get(step.template_id, "")
            step.storage = inputs.storage
        ExecutionStep.objects.bulk_update(
            open_steps, ["resolved_variables", "source_code_version", "storage"]
        )
        link_step_choices(open_steps, inputs)
        record_action("execution.change", user=user, target=execution)
    return execution


def snapshot_parts(execution: Execution, steps: list[ExecutionStep]) -> selectors.BlueprintParts:
    """The execution's own templates and wiring, as snapshotted when it was created."""
    return selectors.BlueprintParts(
        templates=[selectors.template_spec_from(step.template_snapshot, step.template_id)
                   for step in steps],
        wiring=selectors.wires_from_snapshot(execution.wiring_snapshot),
        defaults={step.template_id: step.template_snapshot.get("blueprint_defaults", {})
                  for step in steps},
        snapshots={step.template_id: step.template_snapshot for step in steps},
    )


def execution_data(execution: Execution) -> dict[str, Any]:
    """An execution's inputs as a payload (secret overrides included: never shown)."""
    secret = decrypt_json(execution.secret_overrides)
    overrides = {key: {**execution.variable_overrides.get(key, {}), **secret.get(key, {})}
                 for key in set(execution.variable_overrides) | set(secret)}
    return {
        "variable_overrides": overrides,
        "source_code_versions": dict(execution.source_code_versions),
        "parent_overrides": dict(execution.parent_overrides),
        "integrations": list(execution.integrations.values_list("pk", flat=True)),
        "secrets": list(execution.secrets.values_list("pk", flat=True)),
        "storage": execution.storage_id,
    }


def execute_execution(*, user=None, execution: Execution) -> Execution:
    """Run a pending execution, or run again one that ended in error: done steps are skipped
    (their resources and outputs reused), the others start as their upstream steps finish."""
    if not selectors.may_execute(user, execution):
        from django.core.exceptions import PermissionDenied

        raise PermissionDenied("You may not execute this execution.")
    with transaction.atomic():
        execution = Execution.objects.select_for_update().select_related("blueprint").get(
            pk=execution.pk
        )
        if execution.status not in EDITABLE:
            raise Conflict(f"Execution is {execution.status}: only a pending execution, or one "
                           "that ended in error, can be executed")
        if not execution.blueprint.enabled:
            raise Conflict(f"Blueprint {execution.blueprint.name} is disabled: enable it to "
                           "execute")
        if execution.teardown_status:
            raise Conflict("The execution's resources were torn down: create a new execution")
        execution.status = ExecutionStatus.IN_PROGRESS
        execution.error_message = ""
        execution.started_at = execution.started_at or timezone.now()
        execution.completed_at = None
        run = engine.start_process(
            workflow_name="blueprint_execution",
            run_name=f"Execute {execution.blueprint.name}",
            execution=execution.pk,
        )
        if user is not None and user.is_authenticated:
            run.created_by = user
            run.save(update_fields=["created_by"])
        execution.run = run
        execution.save(update_fields=["status", "error_message", "started_at", "completed_at",
                                      "run"])
        record_action("execution.execute", user=user, target=execution,
                      detail={"run": str(run.pk)})
    return execution


def delete_execution(*, user=None, execution: Execution) -> None:
    """Delete an execution's record (admin); its processes and resources stay."""
    require(user, "blueprints.delete_execution", execution)
    with transaction.atomic():
        list(ExecutionStep.objects.select_for_update().filter(execution=execution).order_by("pk"))
        execution = Execution.objects.select_for_update().get(pk=execution.pk)
        if execution.status == ExecutionStatus.IN_PROGRESS or execution.teardown_status == \
                TeardownStatus.IN_PROGRESS:
            raise Conflict("The execution is running: wait for it to end before deleting it")
        record_action("execution.delete", user=user, target=execution)
        execution.delete()


def resources_in_use(execution: Execution, steps: list[ExecutionStep]) -> list[str]:
    """Why a tear down is refused: a resource used by something outside the execution."""
    from subscriptions.selectors import open_processes

    ours = {step.resource_id for step in steps if step.resource_id}
    reasons = []
    for step in steps:
        resource = step.resource
        if resource is None or resource.status == "terminated":
            continue
        users = [s for s in resource.in_use_by.exclude(status="terminated")
                 if s.pk not in ours]
        if users:
            names = ", ".join(f"{s.description} ({s.pk})" for s in users[:3])
            reasons.append(f"{resource.description} is in use by {names}")
        holders = open_processes(resource)[:3]
        if holders:
            reasons.append(f"{resource.description} is held by "
                           + ", ".join(f"process {p.pk} ({p.workflow.name})" for p in holders))
    return reasons


def teardown_execution(*, user=None, execution: Execution) -> Execution:
    """Terminate every resource the execution created, in reverse dependency order, as one
    tracked run. Explicit and admin-only; refused while a resource is used from outside."""
    require(user, "blueprints.teardown_execution", execution)
    with transaction.atomic():
        steps = list(ExecutionStep.objects.select_for_update(of=("self",))
                     .filter(execution=execution).select_related("resource__product")
                     .order_by("pk"))
        execution = Execution.objects.select_for_update().select_related("blueprint").get(
            pk=execution.pk
        )
        if execution.status in (ExecutionStatus.PENDING, ExecutionStatus.IN_PROGRESS):
            raise Conflict(f"Execution is {execution.status}: tear down an execution that is "
                           "done or ended in error")
        if execution.teardown_status in (TeardownStatus.IN_PROGRESS, TeardownStatus.DONE):
            raise Conflict(f"Tear down is {execution.teardown_status} already")
        if any(step.process_id and step.process.status not in TERMINAL_STATUSES
               and step.status == StepStatus.IN_PROGRESS for step in steps):
            raise Conflict("A step is still running: wait for it before tearing down")
        if not any(step.resource_id for step in steps):
            raise Conflict("The execution created no resources: nothing to tear down")
        reasons = resources_in_use(execution, steps)
        if reasons:
            raise Conflict("Cannot tear down: " + "; ".join(reasons[:MAX_REASONS]))
        missing = [step.resource.product.name for step in steps if step.resource_id and
                   not step.resource.product.workflows.filter(target="terminate").exists()]
        if missing:
            raise Conflict("Cannot tear down: no terminate workflow for product(s) "
                           + ", ".join(sorted(set(missing))))
        execution.teardown_status = TeardownStatus.IN_PROGRESS
        execution.teardown_error = ""
        run = engine.start_process(
            workflow_name="blueprint_teardown",
            run_name=f"Tear down {execution.blueprint.name}",
            execution=execution.pk,
        )
        if user is not None and user.is_authenticated:
            run.created_by = user
            run.save(update_fields=["created_by"])
        execution.teardown_run = run
        execution.save(update_fields=["teardown_status", "teardown_error", "teardown_run"])
        record_action("execution.teardown", user=user, target=execution,
                      detail={"run": str(run.pk)})
    return execution


# --- integrations, secrets, storage ------------------------------------------------------


def clean_json_object(data: Mapping[str, Any], field: str) -> dict[str, Any]:
    value = data.get(field)
    value = {} if value is None else value
    if not isinstance(value, Mapping) or len(value) > MAX_ITEMS:
        raise invalid(field, f"{field} must be an object of at most {MAX_ITEMS} keys")
    return dict(value)


def save_secret(*, user=None, secret: Secret | None = None, data: Mapping[str, Any]) -> Secret:
    """Create or change a secret; the value is encrypted at once and never read back out."""
    require(user, "blueprints.change_secret" if secret else "blueprints.add_secret", secret)
    name = clean_text({**({"name": secret.name} if secret else {}), **data}, "name",
                      required=True, max_length=MAX_NAME)
    if not NAME_PATTERN.match(name):
        raise invalid("name", "a secret's name must be an identifier (it is a key for steps)")
    if Secret.objects.filter(name=name).exclude(pk=secret.pk if secret else None).exists():
        raise invalid("name", f"a secret named {name!r} exists already")
    row = secret or Secret()
    row.name = name
    if "description" in data or secret is None:
        row.description = clean_text(data, "description")
    if "value" in data or secret is None:
        value = clean_text(data, "value", required=True)
        row.value = encrypt_json({"value": value})
    return saved(row, user, "secret", created=secret is None)


def save_integration(*, user=None, integration: Integration | None = None,
                     data: Mapping[str, Any]) -> Integration:
    """Create or change an integration; credentials are encrypted and never read back out."""
    require(user, "blueprints.change_integration" if integration else "blueprints.add_integration",
            integration)
    current = {"name": integration.name, "kind": integration.kind} if integration else {}
    merged = {**current, **data}
    name = clean_text(merged, "name", required=True, max_length=MAX_NAME)
    kind = merged.get("kind")
    if kind not in IntegrationKind.values:
        raise invalid("kind", f"kind must be one of {', '.join(IntegrationKind.values)}")
    if Integration.objects.filter(name=name).exclude(
        pk=integration.pk if integration else None
    ).exists():
        raise invalid("name", f"an integration named {name!r} exists already")
    row = integration or Integration()
    row.name, row.kind = name, kind
    if "description" in data or integration is None:
        row.description = clean_text(data, "description")
    if "settings" in data or integration is None:
        row.settings = clean_json_object(data, "settings")
    if "credentials" in data or integration is None:
        credentials = clean_json_object(data, "credentials")
        if not all(isinstance(v, str) for v in credentials.values()):
            raise invalid("credentials", "credentials must map names to strings")
        row.credentials = encrypt_json(credentials)
    return saved(row, user, "integration", created=integration is None)


def save_storage(*, user=None, storage: StorageBackend | None = None,
                 data: Mapping[str, Any]) -> StorageBackend:
    require(user, "blueprints.change_storagebackend" if storage else
            "blueprints.add_storagebackend", storage)
    current = {"name": storage.name, "kind": storage.kind} if storage else {}
    merged = {**current, **data}
    name = clean_text(merged, "name", required=True, max_length=MAX_NAME)
    kind = merged.get("kind")
    if kind not in StorageKind.values:
        raise invalid("kind", f"kind must be one of {', '.join(StorageKind.values)}")
    if StorageBackend.objects.filter(name=name).exclude(pk=storage.pk if storage else None
                                                        ).exists():
        raise invalid("name", f"a storage backend named {name!r} exists already")
    row = storage or StorageBackend()
    row.name, row.kind = name, kind
    if "description" in data or storage is None:
        row.description = clean_text(data, "description")
    if "settings" in data or storage is None:
        row.settings = clean_json_object(data, "settings")
    if "integration" in data:
        row.integration = None
        if data["integration"] not in (None, ""):
            try:
                row.integration = selectors.find(selectors.integrations_for_user(user),
                                                 data["integration"], "integration")
            except NotFound as error:
                raise invalid("integration", error.message) from None
    return saved(row, user, "storage_backend", created=storage is None)


def saved(row, user, kind: str, created: bool):
    """Save a secret, integration or storage backend with its audit record (never a value)."""
    with transaction.atomic():
        row.save()
        record_action(f"{kind}.{'create' if created else 'change'}", user=user, target=row)
    return row


def removed(row, user, kind: str) -> None:
    with transaction.atomic():
        record_action(f"{kind}.delete", user=user, target=row)
        row.delete()


def refuse_while_used(obj: Any, what: str) -> None:
    """A secret, integration or storage that an execution may still run with stays."""
    open_executions = obj.executions.exclude(status=ExecutionStatus.DONE)
    if open_executions.exists():
        raise Conflict(f"{what} {obj.name} is used by {open_executions.count()} execution(s) "
                       "that may still run: finish or delete them first")


def delete_secret(*, user=None, secret: Secret) -> None:
    require(user, "blueprints.delete_secret", secret)
    refuse_while_used(secret, "Secret")
    removed(secret, user, "secret")


def delete_integration(*, user=None, integration: Integration) -> None:
    require(user, "blueprints.delete_integration", integration)
    refuse_while_used(integration, "Integration")
    if integration.storages.exists():
        raise Conflict(f"Integration {integration.name} is used by a storage backend")
    removed(integration, user, "integration")


def delete_storage(*, user=None, storage: StorageBackend) -> None:
    require(user, "blueprints.delete_storagebackend", storage)
    if storage.executions.exists():
        raise Conflict(f"Storage backend {storage.name} is used by executions: it is kept "
                       "for their audit")
    removed(storage, user, "storage_backend")
