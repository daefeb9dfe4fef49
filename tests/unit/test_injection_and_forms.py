"""Step parameters from the state (type coercion) and form pages (single, multi, schema)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid

import pytest
from django import forms
from pydantic import BaseModel

from orchestrator.exceptions import FormInvalid
from orchestrator.forms import SecretField, form_json_schema, validate_pages
from orchestrator.injection import CoercionError, MissingStateKey, call_with_state, to_json
from orchestrator.models import Workflow


class Speed(enum.Enum):
    TEN = "10G"
    HUNDRED = "100G"


@dataclasses.dataclass
class Address:
    prefix: str
    length: int


class Owner(BaseModel):
    name: str
    email: str


def test_parameters_are_coerced_from_json_by_annotation():
    seen = {}

    def step(
        node_id: uuid.UUID,
        when: datetime.datetime,
        price: decimal.Decimal,
        speed: Speed,
        address: Address,
        owner: Owner,
        vlans: list[int],
        maybe: int | None = None,
        state: dict | None = None,
    ):
        seen.update(locals())

    node_id = uuid.uuid4()
    state = {
        "node_id": str(node_id),
        "when": "2026-11-23T10:00:00+00:00",
        "price": "12.50",
        "speed": "100G",
        "address": {"prefix": "10.0.0.0", "length": 24},
        "owner": {"name": "Ann", "email": "ann@example.net"},
        "vlans": ["10", 20],
    }
    call_with_state(step, state)
    assert seen["node_id"] == node_id
    assert seen["when"] == datetime.datetime(2026, 11, 23, 10, tzinfo=datetime.UTC)
    assert seen["price"] == decimal.Decimal("12.50")
    assert seen["speed"] is Speed.HUNDRED
    assert seen["address"] == Address("10.0.0.0", 24)
    assert seen["owner"] == Owner(name="Ann", email="ann@example.net")
    assert seen["vlans"] == [10, 20]
    assert seen["maybe"] is None
    assert seen["state"] is state


@pytest.mark.django_db
def test_a_django_model_instance_is_loaded_by_primary_key(synced):
    workflow = Workflow.objects.get(name="task_demo")

    def step(workflow: Workflow):
        return {"name": workflow.name}

    assert call_with_state(step, {"workflow": workflow.pk}) == {"name": "task_demo"}
    with pytest.raises(CoercionError, match="'workflow'"):
        call_with_state(step, {"workflow": 999_999})


def test_missing_key_and_bad_values_name_the_key():
    def step(vlan: int, node_id: uuid.UUID):
        return None

    with pytest.raises(MissingStateKey, match="'node_id'"):
        call_with_state(step, {"vlan": 1})
    with pytest.raises(CoercionError, match="'node_id'"):
        call_with_state(step, {"vlan": 1, "node_id": "not-a-uuid"})


def test_results_become_json():
    value = to_json({"id": uuid.UUID(int=1), "speed": Speed.TEN, "address": Address("a", 1),
                     "owner": Owner(name="n", email="e"), "tags": {"b", "a"}})
    assert value == {"id": "00000000-0000-0000-0000-000000000001", "speed": "10G",
                     "address": {"prefix": "a", "length": 1},
                     "owner": {"name": "n", "email": "e"}, "tags": ["a", "b"]}
    with pytest.raises(TypeError):
        to_json({"thing": object()})


class SiteForm(forms.Form):
    site = forms.ChoiceField(choices=[("ams", "Amsterdam"), ("lon", "London")])
    password = SecretField(max_length=50, required=False)


class RackForm(forms.Form):
    rack = forms.IntegerField(min_value=1, max_value=42)


def multi_page():
    site = yield SiteForm
    if site["site"] == "ams":
        rack = yield RackForm
        return {"summary": f"ams rack {rack['rack']}"}
    return {"summary": "london"}


def test_multi_page_generator_forms_replay_pages_and_ask_for_the_next():
    first = validate_pages(multi_page, [], state={})
    assert first.next_form is SiteForm
    more = validate_pages(multi_page, [{"site": "ams"}], state={})
    assert more.next_form is RackForm and more.data == {"site": "ams"}
    complete = validate_pages(multi_page, [{"site": "ams", "password": "pw"}, {"rack": 3}],
                              state={})
    assert complete.complete
    assert complete.data == {"site": "ams", "rack": 3, "summary": "ams rack 3"}
    assert complete.secrets == {"password": "pw"}
    london = validate_pages(multi_page, [{"site": "lon"}], state={})
    assert london.complete and london.data["summary"] == "london"
    with pytest.raises(FormInvalid) as invalid:
        validate_pages(multi_page, [{"site": "ams"}, {"rack": 99}], state={})
    assert "rack" in invalid.value.field_errors
    with pytest.raises(FormInvalid, match="page"):
        validate_pages(multi_page, [{"site": "lon"}, {"rack": 1}], state={})
    with pytest.raises(FormInvalid, match="object"):
        validate_pages(multi_page, ["not an object"], state={})
    with pytest.raises(FormInvalid):
        validate_pages(multi_page, [{}] * 1000, state={})


def test_json_schema_of_a_form_page():
    schema = form_json_schema(SiteForm)
    assert schema["required"] == ["site"]
    assert schema["properties"]["site"]["enum"] == ["ams", "lon"]
    assert schema["properties"]["password"]["format"] == "password"
    assert schema["properties"]["password"]["writeOnly"] is True
    class Sizes(forms.Form):
        ratio = forms.FloatField()
        price = forms.DecimalField()

    sizes = form_json_schema(Sizes)["properties"]
    assert sizes["ratio"]["type"] == "number"
    assert (sizes["price"]["type"], sizes["price"]["format"]) == (["string", "number"], "decimal")
    rack = form_json_schema(RackForm)["properties"]["rack"]
    assert (rack["type"], rack["minimum"], rack["maximum"]) == ("integer", 1, 42)
