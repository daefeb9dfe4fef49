"""The Execute form: generated from a plan's templates and their variables, for the blueprint
page (a new execution) and the execution page (its overrides while pending or in error).

Each variable is an input prefilled with the value it resolves to, using its workflow's own
form field where there is one (choices, bounds and help come with it); a secret variable is
a password input that is never prefilled. What the user leaves as it was, or empties, is no
override: the default or the wire applies. Integrations, secrets, storage and parent
resources are choice fields narrowed to what the user may view (`orchestrator.forms`).

The form only turns the request into the payload the services take (the API's payload);
the services check it again, so the page and the API refuse alike.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django import forms

from blueprints import selectors
from blueprints.models import Integration, Secret, StorageBackend
from blueprints.plan import TemplateSpec, VariableSpec, value_problem
from orchestrator.forms import (
    SecretField,
    VisibleModelChoiceField,
    VisibleModelMultipleChoiceField,
    bind_user,
    field_json_value,
    is_multiple_choice,
)
from subscriptions.models import Subscription

NO_CHOICE = ("", "— not overridden —")
MAX_TEXT = 2000


class JsonOrTextField(forms.CharField):
    """A variable of type any: JSON when the text is JSON (5, true, ["a"]), else the text."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if text in self.empty_values:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return text

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) or value is None else json.dumps(value)


class JsonValueField(forms.JSONField):
    """A variable of type array or object, written as JSON; empty is no value."""

    widget = forms.TextInput

    def prepare_value(self, value: Any) -> Any:
        return "" if value is None else super().prepare_value(value)


TYPE_FIELDS = {
    "string": lambda: forms.CharField(max_length=MAX_TEXT, strip=False),
    "integer": forms.IntegerField,
    "number": forms.FloatField,
    "array": JsonValueField,
    "object": JsonValueField,
}


BOOLEAN_FIELDS = (forms.BooleanField, forms.NullBooleanField)


def boolean_field() -> forms.Field:
    """true, false, or not given (a checkbox cannot say "not given")."""
    widget = forms.NullBooleanSelect()
    widget.choices = [("unknown", NO_CHOICE[1]), ("true", "true"), ("false", "false")]
    return forms.NullBooleanField(widget=widget)


def variable_field(variable: VariableSpec, form_field: forms.Field | None) -> forms.Field:
    """The input of one variable: its workflow's form field when it has one, else one made
    from its type. Never required here: a default or a wire may give the value."""
    if variable.secret:
        made: forms.Field = SecretField(max_length=MAX_TEXT)
    elif variable.type == "boolean" or isinstance(form_field, BOOLEAN_FIELDS):
        made = boolean_field()
    elif form_field is not None and not isinstance(form_field, forms.JSONField):
        made = copy.deepcopy(form_field)
        single = not is_multiple_choice(made)
        if single and isinstance(made, forms.ModelChoiceField):
            made.empty_label = NO_CHOICE[1]
        elif single and isinstance(made, forms.ChoiceField):
            made.choices = [NO_CHOICE, *[c for c in made.choices if c[0] != ""]]
    elif variable.type in TYPE_FIELDS:
        made = TYPE_FIELDS[variable.type]()
    else:
        made = JsonOrTextField(max_length=MAX_TEXT, strip=False)
    made.required = False
    made.initial = None
    made.label = variable.name
    made.help_text = variable.description or getattr(form_field, "help_text", "") or ""
    return made


@dataclass
class VariableRow:
    """One variable of a step, as the page shows it: its value and provenance, and its
    input when the user may change it."""

    variable: VariableSpec
    resolved: Mapping[str, Any]  # {"value", "source", "wired_from"?, "pending"?, "secret"?}
    field: forms.BoundField | None = None


@dataclass
class StepRows:
    """One template of a plan or an execution with its variables (and inputs)."""

    template: TemplateSpec
    rows: list[VariableRow]
    upstream: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    version: forms.BoundField | None = None
    parents: forms.BoundField | None = None
    step: Any = None  # the ExecutionStep, on an execution's page

    @property
    def editable(self) -> bool:
        return any(row.field is not None for row in self.rows)


def var_name(template_id: int, variable: str) -> str:
    return f"var-{template_id}-{variable}"


class ExecutionForm(forms.Form):
    """Overrides per template and the shared choices of an execution (see the module doc).

    `parts` are the blueprint's (or the execution's snapshotted) templates and wiring;
    `current` an existing execution's inputs as a payload (the prefill of its overrides and
    choices). `frozen` holds the templates whose steps are done: they get no inputs, and
    what they ran with is carried over unchanged.
    """

    integrations = VisibleModelMultipleChoiceField(
        Integration.objects.order_by("name"), required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Cloud or code platforms every step may use (credentials reach the steps "
                  "in memory only).",
    )
    secrets = VisibleModelMultipleChoiceField(
        Secret.objects.order_by("name"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text="Named secrets every step receives in memory; never shown.",
    )
    storage = VisibleModelChoiceField(
        StorageBackend.objects.order_by("name"), required=False, empty_label="none",
        help_text="Where the steps keep their state files.",
    )

    def __init__(self, *args: Any, user, parts: selectors.BlueprintParts,
                 current: Mapping[str, Any] | None = None, frozen: frozenset[int] = frozenset(),
                 **kwargs: Any) -> None:
        self.current, self.frozen = current or {}, frozen
        stored = self.current.get("variable_overrides", {})
        self.baseline = selectors.plan_parts(parts)
        self.plan = selectors.plan_parts(parts, {int(k): v for k, v in stored.items()})
        super().__init__(*args, **kwargs)
        self.templates = {step.template.id: step.template for step in self.plan.steps}
        versions = {key: snapshot.get("source_code_versions", [])
                    for key, snapshot in parts.snapshots.items()}
        for step in self.plan.steps:
            if step.template.id in frozen:
                continue
            form_fields = selectors.workflow_first_form_fields(step.template.workflow)
            for variable in step.template.variables:
                name = var_name(step.template.id, variable.name)
                self.fields[name] = variable_field(variable, form_fields.get(variable.name))
                resolved = step.resolved[variable.name]
                if resolved.source and not resolved.secret and not resolved.pending:
                    self.initial[name] = resolved.value
            if versions.get(step.template.id):
                self.fields[f"version-{step.template.id}"] = forms.ChoiceField(
                    required=False, label="Source code version",
                    choices=[("", "— the template's default —"),
                             *[(v, v) for v in versions[step.template.id]]],
                )
            self.fields[f"parents-{step.template.id}"] = VisibleModelMultipleChoiceField(
                Subscription.objects.filter(status="active").order_by("description"),
                required=False, label="Parent resources",
                help_text="Active subscriptions to use instead of the resources of the steps "
                          "it waits for.",
            )
        self.initial.update(self.current_choices())
        bind_user(self, user)

    def current_choices(self) -> dict[str, Any]:
        """The initial choices of an existing execution (its payload, `current`)."""
        initial: dict[str, Any] = {
            key: self.current[key] for key in ("integrations", "secrets", "storage")
            if self.current.get(key)
        }
        for key, version in self.current.get("source_code_versions", {}).items():
            initial[f"version-{key}"] = version
        for key, parents in self.current.get("parent_overrides", {}).items():
            initial[f"parents-{key}"] = parents
        return initial

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        for template_id, template in self.templates.items():
            if template_id in self.frozen:
                continue
            for variable in template.variables:
                name = var_name(template_id, variable.name)
                value = self.json_value(name)
                problem = None if value is None else value_problem(variable, value)
                if problem and name not in self.errors:
                    self.add_error(name, problem)
        return cleaned

    def json_value(self, name: str) -> Any:
        """A variable's cleaned value as JSON; None when it was left empty."""
        value = self.cleaned_data.get(name)
        field = self.fields[name]
        if value in field.empty_values:
            return None
        return field_json_value(field, value)

    def overrides(self) -> dict[int, dict[str, Any]]:
        """The runtime overrides the filled-in form asks for: each value given that differs
        from what the variable resolves to without one (a secret given is always one)."""
        baseline = {step.template.id: step.resolved for step in self.baseline.steps}
        stored = self.current.get("variable_overrides", {})
        overrides: dict[int, dict[str, Any]] = {}
        for template_id, template in self.templates.items():
            if template_id in self.frozen:
                if stored.get(str(template_id)):
                    overrides[template_id] = dict(stored[str(template_id)])
                continue
            values: dict[str, Any] = {}
            for variable in template.variables:
                value = self.json_value(var_name(template_id, variable.name))
                if value is None and variable.secret:  # empty: keep a secret already given
                    value = stored.get(str(template_id), {}).get(variable.name)
                if value is None:
                    continue
                was = baseline[template_id][variable.name]
                if variable.secret or not was.source or was.pending or was.value != value:
                    values[variable.name] = value
            if values:
                overrides[template_id] = values
        return overrides

    def payload(self) -> dict[str, Any]:
        """The execution payload the services (and the API) take; templates by id."""
        data = self.cleaned_data
        versions = {key: value for key, value in
                    self.current.get("source_code_versions", {}).items()
                    if int(key) in self.frozen}
        parents = {key: value for key, value in self.current.get("parent_overrides", {}).items()
                   if int(key) in self.frozen}
        for template_id in self.templates:
            if data.get(f"version-{template_id}"):
                versions[str(template_id)] = data[f"version-{template_id}"]
            if data.get(f"parents-{template_id}"):
                parents[str(template_id)] = [str(s.pk) for s in data[f"parents-{template_id}"]]
        return {
            "variable_overrides": {str(k): v for k, v in self.overrides().items()},
            "source_code_versions": versions,
            "parent_overrides": parents,
            "integrations": [item.pk for item in data.get("integrations") or []],
            "secrets": [item.pk for item in data.get("secrets") or []],
            "storage": data["storage"].pk if data.get("storage") else None,
        }

    def invalid_fields(self) -> list[tuple[str, str]]:
        """(what, element id) of each field with an error, to list them above a long form."""
        found = []
        for name in self.errors:
            if name not in self.fields:
                continue
            kind, _, rest = name.partition("-")
            template_id, _, variable = rest.partition("-")
            template = self.templates.get(int(template_id)) if template_id.isdigit() else None
            what = self.fields[name].label or name
            if template is not None:
                what = f"{template.name} · {variable or what.lower()}"
            found.append((what, self[name].id_for_label))
        return found

    def bound(self, name: str) -> forms.BoundField | None:
        return self[name] if name in self.fields else None

    @property
    def shared_fields(self) -> list[forms.BoundField]:
        return [self["integrations"], self["secrets"], self["storage"]]


def variable_rows(template: TemplateSpec, resolved: Mapping[str, Mapping[str, Any]],
                  form: ExecutionForm | None) -> list[VariableRow]:
    """A template's variables with their resolved values (as `Resolved.as_dict` gives them,
    or as an execution step stores them) and the form's inputs."""
    return [
        VariableRow(
            variable=variable,
            resolved=resolved.get(variable.name, {"value": None, "source": ""}),
            field=form.bound(var_name(template.id, variable.name)) if form else None,
        )
        for variable in template.variables
    ]


def plan_rows(plan: selectors.BlueprintPlan,
              form: ExecutionForm | None = None) -> list[list[StepRows]]:
    """A blueprint's plan by level: each template's variables with value and provenance,
    and the form's inputs beside them when the user may execute."""
    return [
        [
            StepRows(
                template=step.template,
                rows=variable_rows(step.template, {
                    name: value.as_dict() for name, value in step.resolved.items()
                }, form),
                upstream=step.upstream,
                missing=step.missing,
                version=form.bound(f"version-{step.template.id}") if form else None,
                parents=form.bound(f"parents-{step.template.id}") if form else None,
            )
            for step in level
        ]
        for level in plan.levels
    ]
