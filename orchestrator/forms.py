"""Input forms: Django forms, single or multi-page, rendered as HTML and as JSON Schema.

A workflow's `initial_input_form` (and what an `@inputstep` returns) is either a form
class or a generator function that yields form classes and receives each page's
cleaned data, so later pages can depend on earlier answers.

Every form instance the engine makes knows who fills it in (`make_form`): `form.user` is
the requesting user, or None when the system itself starts the run (schedules,
sub-processes). Choice fields among objects (`VisibleModelChoiceField`) offer and accept
only the objects that user may view, in the page, in the JSON Schema and in validation.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import inspect
import time
from collections.abc import Callable, Generator
from typing import Any

from cryptography.fernet import InvalidToken
from django import forms
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.forms.fields import JSONString

from orchestrator.crypto import decrypt_json, encrypt_json
from orchestrator.exceptions import FormInvalid, OrchestratorError
from orchestrator.injection import call_with_state, to_json
from orchestrator.permissions import visible_objects
from orchestrator.safejson import json_problem

MAX_PAGES = 20
# Who fills in a form when no caller said so: nobody, so object choices offer nothing
# (a forgotten user fails closed). The engine always passes the real user, or None for
# the system.
NOBODY = AnonymousUser()


class SecretField(forms.CharField):
    """A value that reaches steps in memory only: never stored in a state or shown."""

    widget = forms.PasswordInput(render_value=False)


class ProcessForm(forms.Form):
    """Convenience base for input forms (plain `forms.Form` works too)."""


VisibleTo = Callable[[Any, QuerySet], QuerySet]


class VisibleChoiceMixin:
    """A choice among the objects of a queryset, narrowed to what the requesting user may
    view: what is not visible is neither offered (page, JSON Schema) nor accepted, and is
    refused with the same message as an id that does not exist.

    `visible_to(user, queryset) -> queryset` is the rule; the default is the model's view
    permission (a role) or a django-guardian grant on the object (`visible_objects`). Until
    the engine tells the field who the user is (`limit_to`), it offers nothing.
    """

    def __init__(self, queryset: QuerySet, *, visible_to: VisibleTo | None = None, **kwargs):
        self.all_objects = queryset
        self.visible_to = visible_to or visible_objects
        super().__init__(queryset.none(), **kwargs)

    def limit_to(self, user) -> None:
        """Offer what `user` may view (everything for the system, `user=None`)."""
        objects = self.all_objects.all()
        self.queryset = objects if user is None else self.visible_to(user, objects)

    def __deepcopy__(self, memo):
        result = super().__deepcopy__(memo)
        result.all_objects = self.all_objects.all()
        return result


class VisibleModelChoiceField(VisibleChoiceMixin, forms.ModelChoiceField):
    """One object the user may view. A form's `clean()` sees the instance; the state gets
    its key (primary key, or `to_field_name`)."""


class VisibleModelMultipleChoiceField(VisibleChoiceMixin, forms.ModelMultipleChoiceField):
    """Several objects the user may view; their keys land in the state as a list."""

    def clean(self, value: Any) -> list[Any]:
        return list(super().clean(value))


def state_value(field: forms.Field | None, value: Any) -> Any:
    """What a cleaned value becomes in the state: a chosen object is its key (the primary
    key, or `to_field_name`), so steps and later pages get JSON, never a model instance."""
    if not isinstance(field, VisibleChoiceMixin) or value is None:
        return value
    key = field.to_field_name or "pk"
    if isinstance(value, list):
        return [getattr(item, key) for item in value]
    return getattr(value, key)


def bind_user(form: forms.BaseForm, user) -> forms.BaseForm:
    """Tell a form instance who fills it in: `form.user`, and its object choices narrowed to
    what that user may view. `user=None` is the system (full choice)."""
    form.user = user
    for field in form.fields.values():
        if isinstance(field, VisibleChoiceMixin):
            field.limit_to(user)
    return form


def make_form(form_class: type[forms.BaseForm], user, **kwargs: Any) -> forms.BaseForm:
    """An instance of one form page for `user` (see `bind_user`)."""
    return bind_user(form_class(**kwargs), user)


def _single_page(form_class: type[forms.BaseForm] | None) -> Generator:
    if form_class is not None:
        yield form_class


def _page_generator(form_spec: Any, state: dict[str, Any]) -> Generator:
    """Every form spec as a generator of form classes (one page or several)."""
    if form_spec is None or (isinstance(form_spec, type) and issubclass(form_spec, forms.BaseForm)):
        return _single_page(form_spec)
    result = call_with_state(form_spec, state)
    if result is None or (isinstance(result, type) and issubclass(result, forms.BaseForm)):
        return _single_page(result)
    if inspect.isgenerator(result):
        return result
    raise TypeError(f"{form_spec!r} must be a form class or yield form classes")


def secret_field_names(form_class: type[forms.BaseForm]) -> set[str]:
    return {
        name for name, field in form_class.base_fields.items() if isinstance(field, SecretField)
    }


class FormResult:
    """Validated input: JSON-safe `data`, `secrets` kept apart, and the next page if any."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.secrets: dict[str, Any] = {}
        self.next_form: type[forms.BaseForm] | None = None

    @property
    def complete(self) -> bool:
        return self.next_form is None


def validate_pages(
    form_spec: Any, pages: list[Any], state: dict[str, Any], *, user: Any = NOBODY
) -> FormResult:
    """Replay the form pages with the given input as `user` fills them in (None: the
    system); raise FormInvalid naming bad fields.

    Pages are JSON, whoever sends them (the API, the browser's multi-page forms, blueprints,
    flows): each value must have its field's JSON type (`read_json_page`), the one the
    page's JSON Schema (`form_json_schema`) announces, before Django's validation runs.
    """
    if not isinstance(pages, list):
        raise FormInvalid("input must be a list of pages (objects)", {"input": ["Not a list."]})
    if len(pages) > MAX_PAGES:
        raise FormInvalid(f"at most {MAX_PAGES} input pages", {"input": ["Too many pages."]})
    result = FormResult()
    generator = _page_generator(form_spec, state)
    sent: Any = None
    for number in range(len(pages) + 1):
        try:
            form_class = generator.send(sent) if number else next(generator)
        except StopIteration as stop:
            if isinstance(stop.value, dict):
                result.data.update(to_json(stop.value))
            form_class = None
        if form_class is None:
            if number < len(pages) and any(pages[number:]):
                raise FormInvalid(
                    f"the form has {number} page(s), {len(pages)} were given",
                    {"input": [f"Unexpected page {number + 1}."]},
                )
            return result
        if number == len(pages):
            result.next_form = form_class
            return result
        page = pages[number]
        if not isinstance(page, dict):
            raise FormInvalid(
                f"input page {number + 1} must be an object", {"input": ["Not an object."]}
            )
        data: dict[str, Any] = {}
        # Bound to `data`, filled below from the form's own fields.
        form = make_form(form_class, user, data=data)
        type_errors = read_json_page(form.fields, page, into=data)
        if not form.is_valid() or type_errors:
            errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
            errors.update(type_errors)
            raise FormInvalid(
                f"Invalid input on page {number + 1}: {', '.join(sorted(errors))}",
                errors,
                form=form_json_schema(form_class, user=user),
            )
        secrets = secret_field_names(form_class)
        cleaned = to_json({
            name: state_value(form.fields.get(name), value)
            for name, value in form.cleaned_data.items() if name not in secrets
        })
        given = {k: form.cleaned_data[k] for k in secrets if k in form.cleaned_data}
        result.data.update(cleaned)
        result.secrets.update(given)
        sent = {**cleaned, **given}
    return result


# --- form fields as JSON ----------------------------------------------------------------------
# One table says, for each kind of form field, which JSON types it takes and the JSON Schema
# that announces them, so what the API accepts and what its schema says cannot drift apart.
# A field that is not required also takes null (= not given). Other kinds take any JSON.


@dataclasses.dataclass(frozen=True)
class JsonKind:
    schema: dict[str, Any]
    types: frozenset[str] | None  # the JSON types a value may have; None: any
    message: str = ""


def _kind(schema: dict[str, Any], message: str) -> JsonKind:
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return JsonKind(schema, frozenset(types), message)


def _text(format_: str | None = None) -> JsonKind:
    schema = {"type": "string", **({"format": format_} if format_ else {})}
    return _kind(schema, "Must be a string.")


ANY_JSON = JsonKind({}, None)
_LIST = _kind({"type": "array"}, "Must be a list of strings.")

_JSON_KINDS: list[tuple[type[forms.Field], JsonKind]] = [
    (forms.BooleanField, _kind({"type": "boolean"}, "Must be true or false.")),
    # FloatField and DecimalField subclass IntegerField: check them first.
    (
        forms.DecimalField,
        _kind(
            {"type": ["string", "number"], "format": "decimal"},
            "Must be a number (or a string holding one).",
        ),
    ),
    (forms.FloatField, _kind({"type": "number"}, "Must be a number.")),
    (forms.IntegerField, _kind({"type": "integer"}, "Must be a whole number.")),
    (forms.DateTimeField, _text("date-time")),
    (forms.DateField, _text("date")),
    (forms.TimeField, _text("time")),
    (forms.DurationField, _text("duration")),
    (forms.UUIDField, _text("uuid")),
    (forms.EmailField, _text("email")),
    (forms.URLField, _text("uri")),
    (forms.GenericIPAddressField, _text("ip-address")),
    (forms.JSONField, ANY_JSON),
    (forms.ModelMultipleChoiceField, _LIST),
    (forms.MultipleChoiceField, _LIST),
    (forms.ChoiceField, _kind({"type": "string"}, "Must be a string: one of the choices.")),
    (forms.CharField, _text()),
]


_TYPE_NAMES = {"array": "a list", "object": "an object", "string": "a string",
               "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "null": "null"}


def json_kind(field: forms.Field) -> JsonKind:
    own = getattr(field, "json_schema", None)  # a field that describes its own JSON
    if own and "type" in own:
        types = own["type"] if isinstance(own["type"], list) else [own["type"]]
        names = " or ".join(_TYPE_NAMES.get(name, name) for name in types)
        return _kind({"type": own["type"]}, f"Must be {names}.")
    for field_type, kind in _JSON_KINDS:
        if isinstance(field, field_type):
            return kind
    return ANY_JSON


def json_types(value: Any) -> set[str]:
    """The JSON Schema types a parsed JSON value satisfies (1.0 is an integer too)."""
    if value is None:
        return {"null"}
    if isinstance(value, bool):
        return {"boolean"}
    if isinstance(value, int):
        return {"integer", "number"}
    if isinstance(value, float):
        return {"number", "integer"} if value.is_integer() else {"number"}
    if isinstance(value, str):
        return {"string"}
    if isinstance(value, list):
        return {"array"}
    if isinstance(value, dict):
        return {"object"}
    return set()


def is_multiple_choice(field: forms.Field) -> bool:
    return isinstance(field, forms.MultipleChoiceField | forms.ModelMultipleChoiceField)


def read_json_value(field: forms.Field, value: Any) -> tuple[Any, str | None]:
    """The value to hand the Django field (None: not given), or why its JSON is wrong."""
    problem = json_problem(value)
    if problem:
        return None, f"{problem}."
    if value is None:
        return None, "This field is required." if field.required else None
    kind = json_kind(field)
    if kind.types is not None and not json_types(value) & kind.types:
        return None, kind.message
    if is_multiple_choice(field) and not all(isinstance(item, str) for item in value):
        return None, kind.message
    if isinstance(field, forms.JSONField) and isinstance(value, str):
        return JSONString(value), None  # a JSON string value, not JSON text to decode
    if isinstance(value, float) and kind.types == {"integer"}:
        return int(value), None
    return value, None


def read_json_page(
    fields: dict[str, forms.Field], page: dict[str, Any], into: dict[str, Any]
) -> dict[str, list[str]]:
    """Check each value of a JSON page against its field's JSON type. The values that fit
    go into `into` (what the form reads); the others come back as field errors. A key that
    names no field is refused too, as the schema's `additionalProperties: false` says."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(repr(key) for key in page if key not in fields)
    if unknown:
        errors["input"] = [f"Unknown field(s): {', '.join(unknown)}."]
    for name, field in fields.items():
        if name not in page:
            continue
        value, problem = read_json_value(field, page[name])
        if problem:
            errors[name] = [problem]
        elif value is not None:
            into[name] = value
    return errors


def choice_values(field: forms.ChoiceField) -> list[str]:
    """The values of a choice field as JSON names them: strings, as an HTML form posts them."""
    values: list[str] = []
    for value, label in field.choices:
        if isinstance(label, list | tuple):  # a named group of choices
            values.extend(str(inner) for inner, _ in label)
        else:
            values.append(str(value))
    return [value for value in values if value != "" or not field.required]


def field_json_value(field: forms.Field, value: Any) -> Any:
    """A cleaned (or initial) value of `field` as the JSON input that gives it back."""
    if is_multiple_choice(field):
        return [str(item) for item in field.prepare_value(value) or []]
    if isinstance(field, forms.ChoiceField):
        return str(field.prepare_value(value))
    return to_json(value)


def _field_schema(field: forms.Field) -> dict[str, Any]:
    schema: dict[str, Any] = copy.deepcopy(json_kind(field).schema)
    if isinstance(field, forms.ChoiceField):
        if is_multiple_choice(field):
            schema["items"] = {"type": "string", "enum": choice_values(field)}
        else:
            schema["enum"] = choice_values(field)
    if isinstance(field, forms.BooleanField) and not isinstance(field, forms.NullBooleanField):
        if field.required:
            schema["enum"] = [True]  # Django's required box must be ticked
    if isinstance(field, SecretField):
        schema["format"] = "password"
        schema["writeOnly"] = True
    for attribute, keyword in (
        ("max_length", "maxLength"),
        ("min_length", "minLength"),
        ("max_value", "maximum"),
        ("min_value", "minimum"),
    ):
        value = getattr(field, attribute, None)
        if value is not None and not callable(value):
            schema[keyword] = to_json(value)
    schema.update(getattr(field, "json_schema", None) or {})  # a field may describe itself
    if not field.required and "type" in schema:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    schema["title"] = str(field.label or "")
    if field.help_text:
        schema["description"] = str(field.help_text)
    if field.initial is not None and not callable(field.initial):
        try:
            schema["default"] = field_json_value(field, field.initial)
        except (TypeError, ValueError):
            pass  # an initial value without a JSON form is simply not announced
    return schema


def form_json_schema(
    form_class: type[forms.BaseForm] | None, *, user: Any = NOBODY
) -> dict[str, Any] | None:
    """JSON Schema of one form page as `user` sees it (object choices they may view)."""
    if form_class is None:
        return None
    fields = make_form(form_class, user).fields
    properties = {name: _field_schema(field) for name, field in fields.items()}
    for name in fields:
        if not properties[name]["title"]:
            properties[name]["title"] = name.replace("_", " ").capitalize()
    required = [name for name, field in fields.items() if field.required]
    return {
        "title": form_class.__name__,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# --- multi-page forms in the browser ---------------------------------------------------------
# The pages already filled in (as JSON pages: `json_page`) travel back and forth in one hidden
# field, encrypted (authenticated) with the secret key, so a secret typed on an earlier page never
# appears in the HTML and a tampered value is refused rather than trusted. The token is bound to
# the form it belongs to, to the user and login session that filled it in (`form_owner`), and
# expires after ORCHESTRATOR_FORM_PAGES_MAX_AGE_SECONDS: replayed by anyone else, in another
# session or later, it is refused. Each POST replays every page through `validate_pages`,
# exactly as the services do.

PAGES_FIELD = "__pages"


class PagesUnreadable(Exception):
    """The hidden field with the earlier pages cannot be used; the message says why."""


def form_owner(request: Any) -> str:
    """Who fills a browser form in: the user and their login session, as a digest."""
    user_id = getattr(request.user, "pk", None) or ""
    session_key = getattr(getattr(request, "session", None), "session_key", None) or ""
    return hashlib.sha256(f"form-owner:{user_id}:{session_key}".encode()).hexdigest()


def encode_pages(pages: list[dict[str, Any]], purpose: str, owner: str = "") -> str:
    """The pages filled in so far, encrypted and bound to the form and the user's session."""
    if not pages:
        return ""
    return encrypt_json({"for": purpose, "owner": owner, "at": time.time(), "pages": pages})


def decode_pages(token: str, purpose: str, owner: str = "") -> list[dict[str, Any]]:
    if not token:
        return []
    try:
        value = decrypt_json(token)
    except (InvalidToken, ValueError, TypeError):
        raise PagesUnreadable(
            "The earlier pages of this form could not be read; start again."
        ) from None
    if not isinstance(value, dict) or value.get("for") != purpose:
        raise PagesUnreadable("The earlier pages belong to another form; start again.")
    if value.get("owner") != owner:
        raise PagesUnreadable(
            "This form was filled in by another user or in another login session: its "
            "earlier pages were discarded; start again."
        )
    max_age = settings.ORCHESTRATOR_FORM_PAGES_MAX_AGE_SECONDS
    at = value.get("at")
    if not isinstance(at, int | float) or not 0 <= time.time() - at <= max_age:
        raise PagesUnreadable(
            f"This form expired (its earlier pages are kept for {max_age // 60} minutes at "
            "most) and they were discarded; start again."
        )
    pages = value.get("pages")
    if not isinstance(pages, list) or not all(isinstance(page, dict) for page in pages):
        raise PagesUnreadable("The earlier pages of this form could not be read; start again.")
    return pages


def json_page(form: forms.BaseForm) -> dict[str, Any]:
    """A valid HTML page as the JSON page the services take: each field's cleaned value in
    its JSON form (a ticked box is `true`, a number a number); empty fields are left out."""
    return {
        name: field_json_value(field, form.cleaned_data[name])
        for name, field in form.fields.items()
        if name in form.cleaned_data and form.cleaned_data[name] not in field.empty_values
    }


def add_service_errors(form: forms.BaseForm | None, error: OrchestratorError) -> list[str]:
    """Put an error's field errors on the form where they name a field; return the rest."""
    rest = []
    for field, problems in error.field_errors.items():
        if field == "form":
            continue
        items = problems if isinstance(problems, list) else [problems]
        if form is not None and form.is_bound and field in form.fields:
            for problem in items:
                form.add_error(field, str(problem))
        else:
            rest.extend(str(problem) for problem in items)
    return rest


class PagedForm:
    """Where a multi-page form stands after one request: the page to show and its errors."""

    def __init__(
        self,
        form_spec: Any,
        state: dict[str, Any],
        purpose: str = "",
        *,
        user: Any = NOBODY,
        owner: str = "",
    ) -> None:
        self.form_spec = form_spec
        self.state = state
        self.purpose = purpose
        self.user = user
        self.owner = owner  # form_owner(request): the token is refused to anyone else
        self.pages: list[dict[str, Any]] = []
        self.form: forms.BaseForm | None = None
        self.errors: list[str] = []
        self.complete = False

    @property
    def pages_token(self) -> str:
        return encode_pages(self.pages, self.purpose, self.owner)

    @property
    def page_number(self) -> int:
        return len(self.pages) + 1

    def start(self) -> PagedForm:
        """The first page, unbound (or `complete` when the spec has no page)."""
        self.pages = []
        result = self.validate([])
        self.form = make_form(result.next_form, self.user) if result.next_form else None
        self.complete = result.complete
        return self

    def submit(self, data) -> PagedForm:
        """Replay the earlier pages, validate the posted page, and move to the next one."""
        try:
            self.pages = decode_pages(data.get(PAGES_FIELD, ""), self.purpose, self.owner)
            result = self.validate(self.pages)
        except (PagesUnreadable, FormInvalid) as error:
            self.start()
            self.errors.append(
                str(error) if isinstance(error, PagesUnreadable)
                else "The earlier pages of this form are no longer valid; start again."
            )
            return self
        if result.complete:
            self.complete = True
            return self
        form = make_form(result.next_form, self.user, data=data)
        self.form = form
        if not form.is_valid():
            return self
        pages = [*self.pages, json_page(form)]
        try:
            result = self.validate(pages)
        except FormInvalid as error:
            self.errors.extend(add_service_errors(form, error) or [error.message])
            return self
        self.pages = pages
        if result.complete:
            self.complete = True
        else:
            self.form = make_form(result.next_form, self.user)
        return self

    def validate(self, pages: list[dict[str, Any]]) -> FormResult:
        return validate_pages(self.form_spec, pages, self.state, user=self.user)
