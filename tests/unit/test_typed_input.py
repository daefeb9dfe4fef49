"""Typed form fields through the API take only their JSON type, and each form's JSON Schema
says exactly which types those are (issue 7, item 7)."""

from __future__ import annotations

import math
import uuid

import jsonschema
import pytest
from django import forms
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator import registry
from orchestrator.exceptions import FormInvalid
from orchestrator.forms import (
    SecretField,
    form_json_schema,
    json_page,
    read_json_value,
    validate_pages,
)
from orchestrator.models import Process, ProcessStatus, ProcessStep, Workflow
from orchestrator.safejson import json_problem
from tests.helpers import run, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended_approval(operator):
    """task_demo_with_input waiting at its approval box (`approved`, a required BooleanField)."""
    process = run(start("task_demo_with_input", {"message": "hi"}, user=operator))
    assert process.status == ProcessStatus.SUSPENDED
    return process


@pytest.mark.parametrize("value", ["0", "off", "nope", "false", "no", "", 1, 0, [True], {}])
def test_an_approval_box_takes_only_true(suspended_approval, operator, api, value):
    steps = ProcessStep.objects.filter(process=suspended_approval).count()
    response = api(operator).post(
        f"/api/processes/{suspended_approval.pk}/resume/",
        {"input": [{"approved": value}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"] == "Invalid input on page 1: approved"
    assert isinstance(body["approved"], list) and body["form"]["properties"]["approved"]
    suspended_approval.refresh_from_db()
    assert suspended_approval.status == ProcessStatus.SUSPENDED
    assert "approved" not in suspended_approval.state
    assert ProcessStep.objects.filter(process=suspended_approval).count() == steps


def test_an_approval_box_ticked_with_true_goes_on(suspended_approval, operator, api):
    response = api(operator).post(
        f"/api/processes/{suspended_approval.pk}/resume/",
        {"input": [{"approved": True, "comment": "fine"}]},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert run(suspended_approval).state["approval"] == {"approved": True, "comment": "fine"}


@pytest.mark.parametrize("value", [["a", "b"], {"a": 1}, 5, 1.5, True])
def test_text_fields_refuse_other_json_types(operator, api, value):
    response = api(operator).post(
        "/api/processes/", {"workflow": "task_demo", "input": [{"message": value}]},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert response.json()["message"] == ["Must be a string."]
    assert not Process.objects.exists()


@pytest.mark.parametrize("number", ["1e400", "-1e400", "NaN", "Infinity", "-Infinity"])
@pytest.mark.parametrize("field", ["message", "step_seconds"])
def test_non_finite_numbers_are_a_400(operator, api, number, field):
    page = '{"message": "hi", "' + field + '": ' + number + "}"
    response = api(operator).post(
        "/api/processes/",
        '{"workflow": "task_demo", "input": [' + page + "]}",
        content_type="application/json",
    )
    assert response.status_code == 400, response.content
    assert "detail" in response.json()
    assert not Process.objects.exists()


@pytest.mark.parametrize("number", [math.inf, -math.inf, math.nan])
def test_non_finite_numbers_are_refused_whoever_calls_the_service(synced, number):
    for page in ({"message": "hi", "step_seconds": number}, {"message": number}):
        with pytest.raises(FormInvalid) as invalid:
            start("task_demo", page)
        field = "step_seconds" if "step_seconds" in page else "message"
        assert field in invalid.value.field_errors
    assert not Process.objects.exists()


def test_unknown_fields_are_refused(operator, api):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "task_demo", "input": [{"message": "hi", "mesage": "typo"}]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json()["input"] == ["Unknown field(s): 'mesage'."]
    assert not Process.objects.exists()


def test_null_means_not_given_on_optional_fields_only(operator, api):
    ok = api(operator).post(
        "/api/processes/",
        {"workflow": "task_demo", "input": [{"message": "hi", "step_seconds": None}]},
        format="json",
    )
    assert ok.status_code == 201, ok.content
    refused = api(operator).post(
        "/api/processes/", {"workflow": "task_demo", "input": [{"message": None}]},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["message"] == ["This field is required."]


# --- every kind of field: the schema and what is accepted agree ---------------------------


class EveryKindForm(forms.Form):
    box = forms.BooleanField(required=True)
    flag = forms.BooleanField(required=False)
    maybe = forms.NullBooleanField(required=False)
    count = forms.IntegerField(min_value=0, max_value=10)
    ratio = forms.FloatField(required=False, min_value=-1, max_value=1)
    price = forms.DecimalField(required=False, max_digits=6, decimal_places=2)
    day = forms.DateField(required=False)
    moment = forms.DateTimeField(required=False)
    at = forms.TimeField(required=False)
    took = forms.DurationField(required=False)
    ident = forms.UUIDField(required=False)
    mail = forms.EmailField(required=False)
    link = forms.URLField(required=False, assume_scheme="https")
    address = forms.GenericIPAddressField(required=False)
    blob = forms.JSONField(required=False)
    many = forms.MultipleChoiceField(choices=[("a", "A"), ("b", "B")], required=False)
    one = forms.ChoiceField(choices=[("", "-"), ("x", "X"), ("y", "Y")], required=False)
    typed = forms.TypedChoiceField(choices=[(1, "one"), (2, "two")], coerce=int,
                                   required=False)
    grouped = forms.ChoiceField(choices=[("G", [("g1", "G1"), ("g2", "G2")])], required=False)
    text = forms.CharField(max_length=5, required=False)
    password = SecretField(required=False)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-20, 20) | st.floats(allow_nan=False,
                                                                   allow_infinity=False)
    | st.text(max_size=6) | st.sampled_from(["a", "x", "1", "g1", "2024-01-02", "true"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                               max_size=3),
    max_leaves=5,
)


def first_pages() -> list[type[forms.BaseForm]]:
    """The first input page of every registered workflow that has one, and EveryKindForm."""
    pages: list[type[forms.BaseForm]] = [EveryKindForm]
    for definition in registry.all_definitions():
        try:
            form = validate_pages(definition.load().initial_input_form, [], state={}).next_form
        except Exception:  # noqa: BLE001, S112 - a form that needs a state is no first page
            continue
        if form is not None:
            pages.append(form)
    return pages


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_a_value_is_accepted_only_if_its_schema_allows_it(synced, data):
    """Any JSON value for any field of any first page: its JSON type passes the field's
    check exactly when the schema's `type` allows it, and a page the form accepts is valid
    against the whole schema."""
    forms_ = first_pages()
    form_class = data.draw(st.sampled_from(forms_))
    schema = form_json_schema(form_class)
    name = data.draw(st.sampled_from(sorted(form_class.base_fields)))
    field, field_schema = form_class.base_fields[name], schema["properties"][name]
    value = data.draw(JSON_VALUES)
    _, problem = read_json_value(field, value)
    type_only = {"type": field_schema["type"]} if "type" in field_schema else {}
    schema_types_ok = jsonschema.Draft202012Validator(type_only).is_valid(value)
    if value is None and field.required:
        assert problem
    elif json_problem(value):  # e.g. a NUL in a string: refused whatever the field's type
        assert problem == f"{json_problem(value)}.", (name, value, problem)
    elif isinstance(value, list) and schema_types_ok and "items" in field_schema:
        pass  # a list's items are the field's to judge (the whole page is checked below)
    else:
        assert (problem is None) == schema_types_ok, (name, value, problem)
    page = {name: value}
    try:
        validate_pages(form_class, [page], state={})
    except FormInvalid:
        return
    jsonschema.validate({**page}, {**schema, "required": []})


def test_the_schema_of_every_kind_of_field():
    properties = form_json_schema(EveryKindForm)["properties"]
    assert properties["box"]["type"] == "boolean" and properties["box"]["enum"] == [True]
    assert properties["flag"]["type"] == ["boolean", "null"]
    assert properties["count"]["type"] == "integer"
    assert properties["price"]["type"] == ["string", "number", "null"]
    assert properties["many"]["items"] == {"type": "string", "enum": ["a", "b"]}
    assert properties["one"]["enum"] == ["", "x", "y", None]
    assert properties["typed"]["enum"] == ["1", "2", None]
    assert properties["grouped"]["enum"] == ["g1", "g2", None]
    assert properties["blob"].keys() == {"title"}


def test_every_kind_of_field_round_trips_from_the_browser():
    """What the browser posts becomes a JSON page the services accept with the same values."""
    posted = {
        "box": "on", "maybe": "true", "count": "3", "ratio": "0.5", "price": "12.50",
        "day": "2024-01-02", "moment": "2024-01-02 10:00", "at": "10:30", "took": "01:00:00",
        "ident": str(uuid.UUID(int=1)), "mail": "a@example.net", "link": "https://x.example",
        "address": "10.0.0.1", "blob": '{"k": [1]}', "many": ["a", "b"], "one": "x",
        "typed": "2", "grouped": "g2", "text": "t", "password": "pw",
    }
    from django.http import QueryDict

    data = QueryDict(mutable=True)
    for key, value in posted.items():
        data.setlist(key, value if isinstance(value, list) else [value])
    form = EveryKindForm(data=data)
    assert form.is_valid(), form.errors
    page = json_page(form)
    assert page["box"] is True and page["count"] == 3 and page["typed"] == "2"
    assert page["many"] == ["a", "b"] and page["blob"] == {"k": [1]} and page["price"] == "12.50"
    result = validate_pages(EveryKindForm, [page], state={})
    assert result.data["typed"] == 2 and result.data["day"] == "2024-01-02"
    assert result.data["took"] == "P0DT01H00M00S"
    assert result.secrets == {"password": "pw"}


def test_choice_values_of_a_model_choice_field_are_strings(synced):
    class PickForm(forms.Form):
        workflow = forms.ModelChoiceField(Workflow.objects.order_by("pk"))

    schema = form_json_schema(PickForm)["properties"]["workflow"]
    first = Workflow.objects.order_by("pk").first()
    assert schema["type"] == "string" and schema["enum"][0] == str(first.pk)
    assert validate_pages(PickForm, [{"workflow": str(first.pk)}], state={}).data == {
        "workflow": first.pk
    }
    with pytest.raises(FormInvalid):
        validate_pages(PickForm, [{"workflow": first.pk}], state={})
