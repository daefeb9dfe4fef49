"""Input forms: Django forms, single or multi-page, rendered as HTML and as JSON Schema.

A workflow's `initial_input_form` (and what an `@inputstep` returns) is either a form
class or a generator function that yields form classes and receives each page's
cleaned data, so later pages can depend on earlier answers.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any

from cryptography.fernet import InvalidToken
from django import forms

from orchestrator.crypto import decrypt_json, encrypt_json
from orchestrator.exceptions import FormInvalid, OrchestratorError
from orchestrator.injection import call_with_state, to_json

MAX_PAGES = 20


class SecretField(forms.CharField):
    """A value that reaches steps in memory only: never stored in a state or shown."""

    widget = forms.PasswordInput(render_value=False)


class ProcessForm(forms.Form):
    """Convenience base for input forms (plain `forms.Form` works too)."""


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


def validate_pages(form_spec: Any, pages: list[Any], state: dict[str, Any]) -> FormResult:
    """Replay the form pages with the given input; raise FormInvalid naming bad fields."""
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
        form = form_class(data=page)
        if not form.is_valid():
            errors = {field: [str(e) for e in errs] for field, errs in form.errors.items()}
            raise FormInvalid(
                f"Invalid input on page {number + 1}: {', '.join(sorted(errors))}",
                errors,
                form=form_json_schema(form_class),
            )
        secrets = secret_field_names(form_class)
        cleaned = to_json({k: v for k, v in form.cleaned_data.items() if k not in secrets})
        result.data.update(cleaned)
        result.secrets.update({k: form.cleaned_data[k] for k in secrets})
        sent = {**cleaned, **{k: form.cleaned_data[k] for k in secrets}}
    return result


_FIELD_TYPES: list[tuple[type[forms.Field], dict[str, Any]]] = [
    (forms.BooleanField, {"type": "boolean"}),
    # FloatField and DecimalField subclass IntegerField: check them first.
    (forms.DecimalField, {"type": "string", "format": "decimal"}),
    (forms.FloatField, {"type": "number"}),
    (forms.IntegerField, {"type": "integer"}),
    (forms.DateTimeField, {"type": "string", "format": "date-time"}),
    (forms.DateField, {"type": "string", "format": "date"}),
    (forms.UUIDField, {"type": "string", "format": "uuid"}),
    (forms.EmailField, {"type": "string", "format": "email"}),
    (forms.URLField, {"type": "string", "format": "uri"}),
    (forms.GenericIPAddressField, {"type": "string", "format": "ip-address"}),
    (forms.JSONField, {}),
    (forms.MultipleChoiceField, {"type": "array"}),
    (forms.ChoiceField, {}),
    (forms.CharField, {"type": "string"}),
]


def _field_schema(field: forms.Field) -> dict[str, Any]:
    schema: dict[str, Any] = {}
    for field_type, base in _FIELD_TYPES:
        if isinstance(field, field_type):
            schema.update(base)
            break
    if isinstance(field, forms.ChoiceField):
        values = [value for value, _ in field.choices if value != ""]
        if isinstance(field, forms.MultipleChoiceField):
            schema["items"] = {"enum": values}
        else:
            schema["enum"] = values
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
            schema[keyword] = value
    schema["title"] = str(field.label or "")
    if field.help_text:
        schema["description"] = str(field.help_text)
    if field.initial is not None and not callable(field.initial):
        schema["default"] = field.initial
    return schema


def form_json_schema(form_class: type[forms.BaseForm] | None) -> dict[str, Any] | None:
    """JSON Schema of one form page, as the API shows it."""
    if form_class is None:
        return None
    properties = {name: _field_schema(field) for name, field in form_class.base_fields.items()}
    for name in form_class.base_fields:
        if not properties[name]["title"]:
            properties[name]["title"] = name.replace("_", " ").capitalize()
    required = [name for name, field in form_class.base_fields.items() if field.required]
    return {
        "title": form_class.__name__,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


# --- multi-page forms in the browser ---------------------------------------------------------
# The raw data of the pages already filled in travels back and forth in one hidden field,
# encrypted (authenticated) with the secret key, so a secret typed on an earlier page never
# appears in the HTML and a tampered value is refused rather than trusted. Each POST replays
# every page through `validate_pages`, exactly as the services do.

PAGES_FIELD = "__pages"


class PagesUnreadable(Exception):
    """The hidden field with the earlier pages is missing its integrity or shape."""


def encode_pages(pages: list[dict[str, Any]], purpose: str) -> str:
    """The pages filled in so far, encrypted and bound to the form they belong to."""
    return encrypt_json({"for": purpose, "pages": pages}) if pages else ""


def decode_pages(token: str, purpose: str) -> list[dict[str, Any]]:
    if not token:
        return []
    try:
        value = decrypt_json(token)
    except (InvalidToken, ValueError, TypeError) as error:
        raise PagesUnreadable(str(error)) from None
    if not isinstance(value, dict) or value.get("for") != purpose:
        raise PagesUnreadable("the pages belong to another form")
    pages = value.get("pages")
    if not isinstance(pages, list) or not all(isinstance(page, dict) for page in pages):
        raise PagesUnreadable("not a list of pages")
    return pages


def page_data(form_class: type[forms.BaseForm], data) -> dict[str, Any]:
    """The raw values of one page's own fields, as the services take them."""
    page: dict[str, Any] = {}
    for name, field in form_class.base_fields.items():
        if getattr(field.widget, "allow_multiple_selected", False):
            if name in data:
                page[name] = data.getlist(name)
        elif name in data:
            page[name] = data.get(name)
    return page


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

    def __init__(self, form_spec: Any, state: dict[str, Any], purpose: str = "") -> None:
        self.form_spec = form_spec
        self.state = state
        self.purpose = purpose
        self.pages: list[dict[str, Any]] = []
        self.form: forms.BaseForm | None = None
        self.errors: list[str] = []
        self.complete = False

    @property
    def pages_token(self) -> str:
        return encode_pages(self.pages, self.purpose)

    @property
    def page_number(self) -> int:
        return len(self.pages) + 1

    def start(self) -> PagedForm:
        """The first page, unbound (or `complete` when the spec has no page)."""
        self.pages = []
        result = validate_pages(self.form_spec, [], self.state)
        self.form = result.next_form() if result.next_form else None
        self.complete = result.complete
        return self

    def submit(self, data) -> PagedForm:
        """Replay the earlier pages, validate the posted page, and move to the next one."""
        try:
            self.pages = decode_pages(data.get(PAGES_FIELD, ""), self.purpose)
            result = validate_pages(self.form_spec, self.pages, self.state)
        except (PagesUnreadable, FormInvalid):
            self.start()
            self.errors.append("The earlier pages of this form could not be read; start again.")
            return self
        if result.complete:
            self.complete = True
            return self
        form = result.next_form(data=data)
        self.form = form
        if not form.is_valid():
            return self
        pages = [*self.pages, page_data(result.next_form, data)]
        try:
            result = validate_pages(self.form_spec, pages, self.state)
        except FormInvalid as error:
            self.errors.extend(add_service_errors(form, error) or [error.message])
            return self
        self.pages = pages
        if result.complete:
            self.complete = True
        else:
            self.form = result.next_form()
        return self
