"""The blueprint's rules in plain Python, no database: validation, the plan (topological
order, BFS levels, upstream sets) and variable resolution with provenance.

Services and selectors turn rows into the small frozen specs below, so one validator
serves every save path (API, admin, pages, import) and planning 2,000 templates is a few
dictionary passes (bench/blueprint_parallel.py measures it).

Resolution, highest first (DESIGN §6): runtime override → wired output of a finished
upstream step → blueprint default → template default. The same function resolves the plan
shown before executing and the values a step starts with, so a runtime override is never
overwritten by a wired output (InfraKitchen's run-time code merges the wired outputs over
the already-resolved overrides).
"""

from __future__ import annotations

import graphlib
import keyword
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

VARIABLE_TYPES = ("string", "integer", "number", "boolean", "array", "object", "any")
NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}$")
MASK = "***"


class NoValue:
    """No default given (None is a value)."""

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = NoValue()


@dataclass(frozen=True)
class VariableSpec:
    name: str
    type: str = "any"
    default: Any = NO_VALUE
    required: bool = False
    secret: bool = False
    description: str = ""


@dataclass(frozen=True)
class TemplateSpec:
    id: int
    name: str
    workflow: str = ""
    variables: tuple[VariableSpec, ...] = ()
    outputs: tuple[tuple[str, str], ...] = ()  # (name, type)

    @property
    def variable_map(self) -> dict[str, VariableSpec]:
        return {variable.name: variable for variable in self.variables}

    @property
    def output_types(self) -> dict[str, str]:
        return dict(self.outputs)


@dataclass(frozen=True)
class Wire:
    source: int
    output: str
    target: int
    variable: str


@dataclass
class Plan:
    order: list[int]  # template ids, topologically sorted
    position: dict[int, int]  # BFS level per template id
    upstream: dict[int, list[int]]  # template ids each one waits for (sorted)

    @property
    def levels(self) -> list[list[int]]:
        levels: list[list[int]] = [[] for _ in range(max(self.position.values(), default=-1) + 1)]
        for template_id in self.order:
            levels[self.position[template_id]].append(template_id)
        return levels


@dataclass
class Problems:
    """Validation problems keyed by the field they concern; each message names its rule."""

    by_field: dict[str, list[str]] = field(default_factory=dict)

    def add(self, field_name: str, message: str) -> None:
        self.by_field.setdefault(field_name, []).append(message)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    @property
    def messages(self) -> list[str]:
        return [message for messages in self.by_field.values() for message in messages]


def type_of(value: Any) -> str:
    """The JSON type of a value."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list | tuple):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "any" if value is None else type(value).__name__


def types_match(given: str, expected: str) -> bool:
    """Whether a value or output of type `given` may feed a variable of type `expected`."""
    if "any" in (given, expected):
        return True
    if given == expected:
        return True
    return given == "integer" and expected == "number"


def value_problem(variable: VariableSpec, value: Any) -> str | None:
    """Why `value` cannot be given to `variable` (None when it can)."""
    if value is None:
        return None
    given = type_of(value)
    if not types_match(given, variable.type):
        return f"expects {variable.type}, got {given}"
    return None


# --- templates ---------------------------------------------------------------------------


def template_problems(
    template: TemplateSpec, form_fields: Mapping[str, dict[str, Any]] | None
) -> Problems:
    """What is wrong with a template on its own. `form_fields` describes the workflow's first
    input page ({field: {"type", "required", "secret"}}), None when the workflow is not
    registered."""
    problems = Problems()
    if form_fields is None:
        problems.add("workflow", f"unregistered workflow: {template.workflow!r} is not a "
                                 "registered workflow")
        form_fields = {}
    seen: set[str] = set()
    for variable in template.variables:
        where = f"variable {variable.name!r}"
        if not NAME_PATTERN.match(variable.name) or keyword.iskeyword(variable.name):
            problems.add("variables", f"invalid name: {where} is not an identifier")
            continue
        if variable.name in seen:
            problems.add("variables", f"duplicate variable: {where} is declared twice")
        seen.add(variable.name)
        if variable.type not in VARIABLE_TYPES:
            problems.add("variables", f"unknown type: {where} has type {variable.type!r} "
                                      f"(one of {', '.join(VARIABLE_TYPES)})")
            continue
        form_field = form_fields.get(variable.name)
        if form_field is None and template.workflow and form_fields is not None:
            if form_fields or problems.by_field.get("workflow") is None:
                problems.add("variables", f"unknown variable: {where} is not a field of the "
                                          f"input form of workflow {template.workflow!r}")
            continue
        if form_field is not None:
            if not types_match(variable.type, form_field["type"]):
                problems.add("variables", f"type mismatch: {where} is {variable.type} but the "
                                          f"form field is {form_field['type']}")
            if variable.secret != form_field["secret"]:
                kind = "a secret" if form_field["secret"] else "not a secret"
                problems.add("variables", f"secret mismatch: {where} is {kind} field of the "
                                          f"form of workflow {template.workflow!r}")
        if variable.secret and variable.default is not NO_VALUE:
            problems.add("variables", f"secret default: {where} is secret and cannot have a "
                                      "stored default (give it per execution)")
        elif variable.default is not NO_VALUE:
            problem = value_problem(variable, variable.default)
            if problem:
                problems.add("variables", f"type mismatch: default of {where} {problem}")
    for name, spec in form_fields.items():
        if spec["required"] and name not in seen:
            problems.add("variables", f"missing variable: the form of workflow "
                                      f"{template.workflow!r} requires field {name!r}")
    output_names: set[str] = set()
    for name, output_type in template.outputs:
        if not NAME_PATTERN.match(name):
            problems.add("outputs", f"invalid name: output {name!r} is not an identifier")
        elif name in output_names:
            problems.add("outputs", f"duplicate output: {name!r} is listed twice")
        elif output_type not in VARIABLE_TYPES:
            problems.add("outputs", f"unknown type: output {name!r} has type {output_type!r}")
        output_names.add(name)
    return problems


# --- blueprints --------------------------------------------------------------------------


def describe_wire(wire: Wire, names: Mapping[int, str]) -> str:
    source, target = names.get(wire.source, wire.source), names.get(wire.target, wire.target)
    return f"{source}.{wire.output} → {target}.{wire.variable}"


def build_plan(template_ids: Iterable[int], wiring: Iterable[Wire]) -> Plan:
    """Topological order and BFS level of every template; raises graphlib.CycleError."""
    ids = list(dict.fromkeys(template_ids))
    upstream: dict[int, set[int]] = {template_id: set() for template_id in ids}
    for wire in wiring:
        if wire.target in upstream and wire.source in upstream and wire.source != wire.target:
            upstream[wire.target].add(wire.source)
    sorter = graphlib.TopologicalSorter(upstream)
    order = list(sorter.static_order())
    position: dict[int, int] = {}
    for template_id in order:
        position[template_id] = max((position[u] + 1 for u in upstream[template_id]), default=0)
    rank = {template_id: index for index, template_id in enumerate(ids)}
    # Stable within a level: the blueprint's own order of its templates.
    order.sort(key=lambda template_id: (position[template_id], rank[template_id]))
    return Plan(
        order=order,
        position=position,
        upstream={t: sorted(u, key=rank.__getitem__) for t, u in upstream.items()},
    )


def blueprint_problems(
    templates: list[TemplateSpec],
    wiring: list[Wire],
    default_variables: Mapping[int, Mapping[str, Any]],
) -> tuple[Problems, Plan | None]:
    """Everything wrong with a blueprint, and its plan when the graph is sound."""
    problems = Problems()
    by_id = {template.id: template for template in templates}
    names = {template.id: template.name for template in templates}
    if len(by_id) != len(templates):
        problems.add("templates", "duplicate template: a template is listed twice")
    fed: dict[tuple[int, str], Wire] = {}
    for wire in wiring:
        rule = f"rule {describe_wire(wire, names)}"
        if wire.source == wire.target:
            problems.add("wiring", f"self-wiring: {rule} wires a template to itself")
            continue
        source, target = by_id.get(wire.source), by_id.get(wire.target)
        if source is None or target is None:
            missing = wire.source if source is None else wire.target
            problems.add("wiring", f"template not in blueprint: {rule} names template "
                                   f"{names.get(missing, missing)!r}, not one of the blueprint's")
            continue
        output_types = source.output_types
        if wire.output not in output_types:
            known = ", ".join(output_types) or "none"
            problems.add("wiring", f"unknown output: {rule}: {source.name} has no output "
                                   f"{wire.output!r} (outputs: {known})")
            continue
        variable = target.variable_map.get(wire.variable)
        if variable is None:
            problems.add("wiring", f"unknown variable: {rule}: {target.name} has no variable "
                                   f"{wire.variable!r}")
            continue
        if not types_match(output_types[wire.output], variable.type):
            problems.add("wiring", f"type mismatch: {rule}: output is "
                                   f"{output_types[wire.output]}, variable is {variable.type}")
        if (wire.target, wire.variable) in fed:
            problems.add("wiring", f"wired twice: {rule}: {target.name}.{wire.variable} is "
                                   "already fed by another rule")
        fed[(wire.target, wire.variable)] = wire
    for template_id, values in default_variables.items():
        template = by_id.get(template_id)
        if template is None:
            problems.add("default_variables", f"template not in blueprint: defaults given for "
                                              f"{names.get(template_id, template_id)!r}")
            continue
        for problem in values_problems(template, values, "default"):
            problems.add("default_variables", problem)
    plan = None
    try:
        plan = build_plan(by_id, [w for w in wiring if w.source in by_id and w.target in by_id])
    except graphlib.CycleError as error:
        cycle = [names.get(node, str(node)) for node in error.args[1]]
        problems.add("wiring", f"cycle: {' → '.join(cycle)} (templates "
                               f"{', '.join(sorted(set(cycle)))} depend on each other)")
    return problems, plan


def values_problems(
    template: TemplateSpec, values: Mapping[str, Any], what: str, secrets_allowed: bool = False
) -> list[str]:
    """Problems of {variable: value} given for `template` as a default or an override."""
    if not isinstance(values, Mapping):
        return [f"not an object: the {what}s of {template.name} must map variables to values"]
    found = []
    variables = template.variable_map
    for name, value in values.items():
        variable = variables.get(name)
        if variable is None:
            found.append(f"unknown variable: {template.name} has no variable {name!r}")
        elif variable.secret and not secrets_allowed:
            found.append(f"secret default: {template.name}.{name} is secret: give it per "
                         "execution")
        else:
            problem = value_problem(variable, value)
            if problem:
                found.append(f"type mismatch: {what} of {template.name}.{name} {problem}")
    return found


# --- resolution --------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    value: Any
    source: str  # override, wired, blueprint_default, template_default, or "" (no value)
    wired_from: str = ""  # "VPC.vpc_id" when wired
    pending: bool = False  # wired from a step that has not finished yet
    secret: bool = False

    def as_dict(self) -> dict[str, Any]:
        shown = MASK if self.secret and self.source else self.value
        data: dict[str, Any] = {"value": shown, "source": self.source}
        if self.wired_from:
            data["wired_from"] = self.wired_from
        if self.pending:
            data["pending"] = True
        if self.secret:
            data["secret"] = True
        return data


def resolve_variables(
    template: TemplateSpec,
    *,
    overrides: Mapping[str, Any],
    wires: Iterable[Wire],
    outputs: Mapping[int, Mapping[str, Any] | None],
    blueprint_defaults: Mapping[str, Any],
    names: Mapping[int, str],
) -> dict[str, Resolved]:
    """Every variable of `template` with its value and where it came from.

    `outputs` holds the outputs of finished upstream steps by template id (None for a step
    that has not finished: its wired values are `pending`).
    """
    wired = {wire.variable: wire for wire in wires if wire.target == template.id}
    resolved: dict[str, Resolved] = {}
    for variable in template.variables:
        secret = variable.secret
        wire = wired.get(variable.name)
        wired_from = f"{names.get(wire.source, wire.source)}.{wire.output}" if wire else ""
        if variable.name in overrides:
            resolved[variable.name] = Resolved(overrides[variable.name], "override", wired_from,
                                               secret=secret)
        elif wire is not None:
            upstream = outputs.get(wire.source)
            if upstream is None:
                resolved[variable.name] = Resolved(None, "wired", wired_from, pending=True,
                                                   secret=secret)
            else:
                resolved[variable.name] = Resolved(upstream.get(wire.output), "wired",
                                                   wired_from, secret=secret)
        elif variable.name in blueprint_defaults:
            resolved[variable.name] = Resolved(blueprint_defaults[variable.name],
                                               "blueprint_default", secret=secret)
        elif variable.default is not NO_VALUE:
            resolved[variable.name] = Resolved(variable.default, "template_default",
                                               secret=secret)
        else:
            resolved[variable.name] = Resolved(None, "", secret=secret)
    return resolved


def missing_required(template: TemplateSpec, resolved: Mapping[str, Resolved]) -> list[str]:
    """Required variables that nothing gives a value (a pending wire will)."""
    return [
        variable.name
        for variable in template.variables
        if variable.required and not resolved[variable.name].source
    ]
