"""A flow's parameters: bound from a call, checked and coerced against the type hints
(pydantic), and offered as an input form (a Django form, so the page, the API's JSON Schema
and the start service treat a flow like any other workflow)."""

from __future__ import annotations

import datetime
import decimal
import enum
import inspect
import json
import types
import typing
import uuid
from typing import Any

import pydantic
from django import forms
from django.db import models

from orchestrator.exceptions import FormInvalid
from orchestrator.forms import SecretField
from orchestrator.injection import CoercionError, coerce, to_json

# Keys the engine keeps in a flow's state beside its parameters.
RESERVED = frozenset({"process_id", "workflow_name", "result", "state"})


def signature_hints(fn: Any) -> tuple[inspect.Signature, dict[str, Any]]:
    signature = inspect.signature(fn)
    try:
        hints = typing.get_type_hints(fn)
    except NameError as error:
        raise TypeError(f"cannot resolve the type hints of {fn.__qualname__}: {error}") from error
    return signature, hints


def bind(signature: inspect.Signature, args: tuple,
         kwargs: dict[str, Any]) -> inspect.BoundArguments:
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as error:
        raise TypeError(f"bad arguments: {error}") from None
    bound.apply_defaults()
    return bound


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and (
        issubclass(annotation, models.Model) or hasattr(annotation, "from_state")
    )


class Parameters:
    """The parameters of one flow function: validation and the input form."""

    def __init__(self, fn: Any, flow_name: str, validate: bool) -> None:
        self.signature, self.hints = signature_hints(fn)
        self.flow_name = flow_name
        self.validate_types = validate
        self.names = []
        for name, parameter in self.signature.parameters.items():
            if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
                continue
            if name in RESERVED or name.startswith("_"):
                raise TypeError(
                    f"flow {flow_name!r}: the parameter name {name!r} is reserved; rename it"
                )
            self.names.append(name)
        self._model: type[pydantic.BaseModel] | None = None

    def annotation(self, name: str) -> Any:
        return self.hints.get(name, Any)

    @property
    def model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of the parameters (Django and domain models checked apart)."""
        if self._model is None:
            fields: dict[str, Any] = {}
            for name in self.names:
                default = self.signature.parameters[name].default
                annotation = self.annotation(name)
                fields[name] = (
                    Any if _is_model(annotation) else annotation,
                    ... if default is inspect.Parameter.empty else default,
                )
            self._model = pydantic.create_model(
                f"{self.flow_name}-parameters",
                __config__=pydantic.ConfigDict(arbitrary_types_allowed=True),
                **fields,
            )
        return self._model

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """The values as the function's types (raises FormInvalid naming each bad one).

        Without `validate_parameters` the values pass as they are.
        """
        unknown = sorted(set(values) - set(self.names))
        if unknown and not self._takes_kwargs():
            raise FormInvalid(
                f"Unknown parameter(s) of {self.flow_name}: {', '.join(unknown)}",
                {name: ["Not a parameter of this flow."] for name in unknown},
            )
        if not self.validate_types:
            missing = [
                name for name in self.names
                if name not in values
                and self.signature.parameters[name].default is inspect.Parameter.empty
            ]
            if missing:
                raise FormInvalid(
                    f"Missing parameter(s): {', '.join(missing)}",
                    {name: ["This field is required."] for name in missing},
                )
            return dict(values)
        errors: dict[str, list[str]] = {}
        known = {name: value for name, value in values.items() if name in self.names}
        try:
            # Parameters are JSON (a form page, a state): pydantic's strict JSON mode takes
            # exactly what their JSON Schema announces (an int is a JSON integer, not "3" or
            # true) and builds what JSON cannot say (a datetime from its ISO string).
            checked = self.model.model_validate_json(json.dumps(to_json(known)), strict=True)
        except pydantic.ValidationError as error:
            for problem in error.errors():
                field = str(problem["loc"][0]) if problem["loc"] else "input"
                errors.setdefault(field, []).append(problem["msg"])
            checked = None
        result: dict[str, Any] = {}
        if checked is not None:
            result = {name: getattr(checked, name) for name in self.names}
        for name in self.names:
            annotation = self.annotation(name)
            if _is_model(annotation) and name in known and name not in errors:
                try:
                    result[name] = coerce(known[name], annotation, name)
                except CoercionError as error:
                    errors[name] = [str(error)]
        if errors:
            raise FormInvalid(
                f"Invalid parameter(s) of {self.flow_name}: {', '.join(sorted(errors))}", errors
            )
        result.update({name: value for name, value in values.items() if name not in self.names})
        return result

    def _takes_kwargs(self) -> bool:
        return any(
            parameter.kind == parameter.VAR_KEYWORD
            for parameter in self.signature.parameters.values()
        )

    def form(self) -> type[forms.Form]:
        """The flow's input form: one field per parameter, checked by `validate` on clean."""
        fields = {name: self.form_field(name) for name in self.names}
        parameters = self

        def clean(form: forms.Form) -> dict[str, Any]:
            cleaned = forms.Form.clean(form)
            given = {}
            for name in parameters.names:
                if name in form.errors or name not in cleaned:
                    continue
                value = cleaned[name]
                omitted = name not in form.data or value in (None, "")
                if omitted and not form.fields[name].required:
                    cleaned.pop(name)  # the function's default applies at run time
                    continue
                given[name] = value
            try:
                checked = parameters.validate(given)
            except FormInvalid as error:
                for name, problems in error.field_errors.items():
                    if name in form.errors or name not in form.fields:
                        continue  # already said by the field, or missing because of that
                    for problem in problems:
                        form.add_error(name, problem)
                return cleaned
            if form.errors:
                return cleaned
            for name in given:  # canonical JSON; secrets stay as typed (kept apart, encrypted)
                if not isinstance(form.fields[name], SecretField):
                    cleaned[name] = to_json(checked[name])
            return cleaned

        title = "".join(part.capitalize() for part in self.flow_name.replace("-", "_").split("_"))
        return type(f"{title or 'Flow'}Parameters", (forms.Form,), {**fields, "clean": clean})

    def form_field(self, name: str) -> forms.Field:
        parameter = self.signature.parameters[name]
        annotation = self.annotation(name)
        has_default = parameter.default is not inspect.Parameter.empty
        optional, annotation = _unwrap_optional(annotation)
        field = _field_for(annotation)
        field.required = not has_default and not optional
        field.label = name.replace("_", " ").capitalize()
        if has_default and parameter.default is not None:
            try:
                field.initial = to_json(parameter.default)
            except TypeError:
                pass
        if isinstance(field, forms.JSONField):
            try:
                field.json_schema = pydantic.TypeAdapter(annotation).json_schema()
            except (pydantic.PydanticSchemaGenerationError, pydantic.PydanticUserError, TypeError):
                field.json_schema = {}
        return field


def _unwrap_optional(annotation: Any) -> tuple[bool, Any]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(options) < len(typing.get_args(annotation)):
            return True, options[0] if len(options) == 1 else annotation
    return False, annotation


_SIMPLE_FIELDS: list[tuple[Any, type[forms.Field]]] = [
    (bool, forms.NullBooleanField),
    (int, forms.IntegerField),
    (float, forms.FloatField),
    (decimal.Decimal, forms.DecimalField),
    (datetime.datetime, forms.DateTimeField),
    (datetime.date, forms.DateField),
    (uuid.UUID, forms.UUIDField),
    (str, forms.CharField),
    (pydantic.SecretStr, SecretField),
]


def _field_for(annotation: Any) -> forms.Field:
    for python_type, field_class in _SIMPLE_FIELDS:
        if annotation is python_type:
            return field_class()
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return forms.ChoiceField(choices=[(member.value, member.name) for member in annotation])
    if typing.get_origin(annotation) is typing.Literal:
        values = typing.get_args(annotation)
        return forms.ChoiceField(choices=[(value, str(value)) for value in values])
    return forms.JSONField()
