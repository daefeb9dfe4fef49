"""The blueprints admin: the services' rules on every form, execute/tear down/delete actions
through the services, secrets write-only."""

from __future__ import annotations

import json

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from blueprints import services
from blueprints.models import Blueprint, Execution, Secret, Template
from tests.blueprint_helpers import RES_VARIABLES, drain
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


def staff(role: str):
    user = user_with_role(role)
    user.is_staff = True
    user.save()
    return user


def messages_of(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def act(client, action: str, executions) -> list[str]:
    response = client.post(
        reverse("admin:blueprints_execution_changelist"),
        {"action": action, "_selected_action": [str(e.pk) for e in executions]},
        follow=True,
    )
    assert response.status_code == 200
    return messages_of(response)


def test_the_admin_refuses_a_cycle_naming_it_and_saves_a_good_blueprint(three_tier, client):
    client.force_login(staff("admin"))
    ids = {t.name: t.pk for t in Template.objects.all()}
    form = {
        "name": "from-admin", "description": "", "enabled": "on",
        "members": [ids["net"], ids["app"]],
        "default_variables": json.dumps({"net": {"name": "n"}, "app": {"name": "a"}}),
        "wiring": json.dumps([
            {"source_template": "net", "source_output": "res_id", "target_template": "app",
             "target_variable": "upstream_id"},
            {"source_template": "app", "source_output": "res_id", "target_template": "net",
             "target_variable": "upstream_id"}]),
    }
    url = reverse("admin:blueprints_blueprint_add")
    refused = client.post(url, form)
    assert refused.status_code == 200
    assert "cycle: " in refused.content.decode()
    assert not Blueprint.objects.filter(name="from-admin").exists()
    form["wiring"] = json.dumps(json.loads(form["wiring"])[:1])
    saved = client.post(url, form)
    assert saved.status_code == 302, saved.content.decode()[:2000]
    blueprint = Blueprint.objects.get(name="from-admin")
    assert blueprint.wiring.count() == 1 and blueprint.members.count() == 2
    change = client.get(reverse("admin:blueprints_blueprint_change", args=[blueprint.pk]))
    assert change.status_code == 200 and "upstream_id" in change.content.decode()


def test_the_admin_refuses_a_bad_template_on_the_field(res_product, client):
    client.force_login(staff("admin"))
    response = client.post(reverse("admin:blueprints_template_add"), {
        "name": "t", "description": "", "workflow": "create_res", "product": res_product.pk,
        "variables": json.dumps([*RES_VARIABLES, {"name": "nope"}]), "outputs": "[]",
        "source_code_versions": "[]",
    })
    assert response.status_code == 200
    assert "unknown variable: variable &#x27;nope&#x27;" in response.content.decode()
    assert not Template.objects.exists()


def test_execute_and_delete_actions_go_through_the_services(three_tier, client):
    execution = services.create_execution(blueprint=three_tier)
    operator = staff("operator")
    client.force_login(operator)
    changelist = client.get(reverse("admin:blueprints_execution_changelist")).content.decode()
    assert "execute_selected" in changelist
    assert "delete_selected_executions" not in changelist and "teardown_selected" not in changelist
    assert act(client, "execute_selected", [execution]) == ["Executed 1."]
    again = act(client, "execute_selected", [execution])
    assert "Execution is in_progress: only a pending execution" in again[0]
    drain()
    client.force_login(staff("admin"))
    assert act(client, "delete_selected_executions", [execution]) == ["Deleted 1."]
    assert not Execution.objects.exists()


def test_a_viewer_sees_executions_but_no_action(three_tier, client):
    services.create_execution(blueprint=three_tier)
    client.force_login(staff("viewer"))
    page = client.get(reverse("admin:blueprints_execution_changelist")).content.decode()
    assert "three-tier" in page
    assert "execute_selected" not in page and "delete_selected" not in page


def test_secret_values_are_write_only_in_the_admin(synced, client):
    client.force_login(staff("admin"))
    url = reverse("admin:blueprints_secret_add")
    assert client.post(url, {"name": "token", "description": "", "value": "adm1n-s3cret"}
                       ).status_code == 302
    secret = Secret.objects.get(name="token")
    change_url = reverse("admin:blueprints_secret_change", args=[secret.pk])
    page = client.get(change_url).content.decode()
    assert "adm1n-s3cret" not in page and secret.value not in page
    client.post(change_url, {"name": "token", "description": "kept", "value": ""})
    secret.refresh_from_db()
    from orchestrator.crypto import decrypt_json

    assert decrypt_json(secret.value) == {"value": "adm1n-s3cret"}  # blank kept it
    refused = client.post(reverse("admin:blueprints_secret_add"),
                          {"name": "bad name", "description": "", "value": "x"})
    assert "identifier" in refused.content.decode()
