"""The blueprint API (DESIGN §8): templates, blueprints with levels and plans, executions
(create, execute with its 409s, change while pending/error, delete as admin), integrations,
secrets, storage, export/import; per role and per object; hostile input everywhere."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings
from guardian.shortcuts import assign_perm

from blueprints import services
from blueprints.models import Blueprint, Execution, Secret, Template
from tests.blueprint_helpers import RES_OUTPUTS, RES_VARIABLES, drain

pytestmark = pytest.mark.django_db
ANY_UUID = "8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11"


def body(response) -> dict:
    return response.json()


@pytest.fixture
def execution(three_tier):
    return services.create_execution(blueprint=three_tier)


# --- templates and blueprints ------------------------------------------------------------


def test_templates_are_created_listed_changed_and_refused_through_the_api(res_product, admin_user,
                                                                          api):
    client = api(admin_user)
    payload = {"name": "vm", "workflow": "create_res", "product": "Res",
               "variables": RES_VARIABLES, "outputs": ["res_id", {"name": "subnets",
                                                                   "type": "array"}]}
    created = client.post("/api/templates/", payload, format="json")
    assert created.status_code == 201, created.content
    template = body(created)
    assert template["workflow"] == "create_res" and template["product"] == "Res"
    assert template["outputs"] == ["res_id", "subnets"]
    assert template["output_types"] == {"res_id": "any", "subnets": "array"}
    assert body(client.get("/api/templates/vm/"))["id"] == template["id"]
    changed = client.patch(f"/api/templates/{template['id']}/", {"description": "a VM"},
                           format="json")
    assert changed.status_code == 200 and body(changed)["description"] == "a VM"
    bad = client.post("/api/templates/", {**payload, "name": "bad", "workflow": "modify_box"},
                      format="json")
    assert bad.status_code == 400
    assert "modify workflow" in body(bad)["detail"] and "workflow" in body(bad)
    assert client.delete(f"/api/templates/{template['id']}/").status_code == 204


def test_a_blueprint_detail_shows_its_levels_and_its_plan(three_tier, viewer, api):
    client = api(viewer)
    detail = body(client.get(f"/api/blueprints/{three_tier.pk}/"))
    ids = {t.name: t.pk for t in Template.objects.all()}
    assert detail["levels"] == [[ids["net"]], [ids["app"], ids["db"]]]
    assert detail["level_names"] == [["net"], ["app", "db"]]
    assert {"source_template": ids["net"], "source_output": "res_id",
            "target_template": ids["app"], "target_variable": "upstream_id"} in detail["wiring"]
    assert body(client.get("/api/blueprints/three-tier/"))["id"] == three_tier.pk
    plan = body(client.get(f"/api/blueprints/{three_tier.pk}/plan/"))
    app = plan["steps"][1]
    assert app["template_name"] == "app" and app["position"] == 1
    assert app["resolved_variables"]["upstream_id"]["source"] == "wired"
    planned = client.post(f"/api/blueprints/{three_tier.pk}/plan/",
                          {"variable_overrides": {"app": {"upstream_id": "x"}}}, format="json")
    assert body(planned)["steps"][1]["resolved_variables"]["upstream_id"] == {
        "value": "x", "source": "override", "wired_from": "net.res_id"}
    assert not Execution.objects.exists()  # planning stores nothing


def test_a_bad_blueprint_is_a_400_naming_the_rule_and_nothing_is_stored(three_tier, admin_user,
                                                                        api):
    response = api(admin_user).post("/api/blueprints/", {
        "name": "cyclic", "templates": ["net", "app"],
        "wiring": [
            {"source_template": "net", "source_output": "res_id", "target_template": "app",
             "target_variable": "upstream_id"},
            {"source_template": "app", "source_output": "res_id", "target_template": "net",
             "target_variable": "upstream_id"},
        ]}, format="json")
    assert response.status_code == 400
    assert "cycle" in body(response)["detail"] and "wiring" in body(response)
    assert not Blueprint.objects.filter(name="cyclic").exists()


# --- executions ----------------------------------------------------------------------------


def test_an_operator_creates_and_executes_execute_again_is_a_409_saying_why(three_tier, operator,
                                                                            api):
    client = api(operator)
    created = client.post(f"/api/blueprints/{three_tier.pk}/executions/", {
        "variable_overrides": {"db": {"password": "hunter2-secret", "size": 3}}}, format="json")
    assert created.status_code == 201, created.content
    detail = body(created)
    assert detail["status"] == "pending" and len(detail["steps"]) == 3
    db = next(step for step in detail["steps"] if step["template_name"] == "db")
    assert db["resolved_variables"]["password"] == {"value": "***", "source": "override",
                                                    "secret": True}
    assert "hunter2-secret" not in created.content.decode()
    execution_id = detail["id"]
    executed = client.post(f"/api/executions/{execution_id}/execute/")
    assert executed.status_code == 200 and body(executed)["status"] == "in_progress"
    again = client.post(f"/api/executions/{execution_id}/execute/")
    assert again.status_code == 409
    assert body(again)["detail"] == ("Execution is in_progress: only a pending execution, or one "
                                     "that ended in error, can be executed")
    from orchestrator.models import AuditEvent

    assert AuditEvent.objects.filter(action="execution.execute", actor=operator,
                                     object_id=execution_id).exists()
    drain()
    final = body(client.get(f"/api/executions/{execution_id}/"))
    assert final["status"] == "done"
    assert final["levels"] == [[t.pk for t in Template.objects.filter(name="net")],
                               [t.pk for t in Template.objects.filter(name__in=["app", "db"])
                                .order_by("name")]]
    assert all(step["process"] and step["resource"] for step in final["steps"])
    assert "hunter2-secret" not in json.dumps(final)
    assert client.post(f"/api/executions/{execution_id}/execute/").status_code == 409


def test_overrides_change_while_pending_and_not_once_running(execution, operator, api):
    client = api(operator)
    url = f"/api/executions/{execution.pk}/"
    changed = client.patch(url, {"variable_overrides": {"app": {"upstream_id": "manual"}}},
                           format="json")
    assert changed.status_code == 200
    app = next(s for s in body(changed)["steps"] if s["template_name"] == "app")
    assert app["resolved_variables"]["upstream_id"]["source"] == "override"
    bad = client.patch(url, {"variable_overrides": {"app": {"size": "huge"}}}, format="json")
    assert bad.status_code == 400 and "type mismatch" in body(bad)["detail"]
    client.post(f"{url}execute/")
    refused = client.patch(url, {"variable_overrides": {}}, format="json")
    assert refused.status_code == 409 and "pending or in error" in body(refused)["detail"]


def test_delete_needs_admin_and_a_viewer_may_only_look(execution, viewer, operator, admin_user,
                                                       api):
    url = f"/api/executions/{execution.pk}/"
    assert api(viewer).get(url).status_code == 200
    assert api(viewer).post(f"{url}execute/").status_code == 403
    assert api(viewer).patch(url, {}, format="json").status_code == 403
    assert api(viewer).post(f"/api/blueprints/{execution.blueprint_id}/executions/", {},
                            format="json").status_code == 403
    assert api(operator).delete(url).status_code == 403
    assert api(admin_user).delete(url).status_code == 204
    assert not Execution.objects.exists()


def test_per_object_grants_narrow_what_a_user_sees_and_may_execute(three_tier, res_product,
                                                                   nobody, api):
    from tests.blueprint_helpers import make_blueprint

    other = make_blueprint("other", ["net"], defaults={"net": {"name": "n"}})
    client = api(nobody)
    assert body(client.get("/api/blueprints/"))["count"] == 0
    assert client.get(f"/api/blueprints/{three_tier.pk}/").status_code == 404
    assign_perm("blueprints.view_blueprint", nobody, three_tier)
    listed = body(client.get("/api/blueprints/"))
    assert [b["name"] for b in listed["results"]] == ["three-tier"]
    assert client.get(f"/api/blueprints/{other.pk}/").status_code == 404
    url = f"/api/blueprints/{three_tier.pk}/executions/"
    assert client.post(url, {}, format="json").status_code == 403
    assign_perm("blueprints.execute_blueprint", nobody, three_tier)
    created = client.post(url, {}, format="json")
    assert created.status_code == 201
    assert client.post(f"/api/executions/{body(created)['id']}/execute/").status_code == 200
    assign_perm("blueprints.view_blueprint", nobody, other)
    assert client.post(f"/api/blueprints/{other.pk}/executions/", {},
                       format="json").status_code == 403
    foreign = services.create_execution(blueprint=other)
    assert client.post(f"/api/executions/{foreign.pk}/execute/").status_code == 403


def test_choice_fields_accept_only_what_the_user_may_view(three_tier, operator, api):
    hidden = services.save_secret(data={"name": "hidden", "value": "s3cr3t-value"})
    client = api(operator)
    url = f"/api/blueprints/{three_tier.pk}/executions/"
    assert client.post(url, {"secrets": [hidden.pk]}, format="json").status_code == 201
    from django.contrib.auth.models import Group, Permission

    Group.objects.get(name="operator").permissions.remove(
        Permission.objects.get(codename="view_secret"))
    operator = type(operator).objects.get(pk=operator.pk)  # fresh permission cache
    refused = api(operator).post(url, {"secrets": [hidden.pk]}, format="json")
    assert refused.status_code == 400
    assert body(refused)["secrets"] == [f"Unknown secret '{hidden.pk}'"]
    assert "hidden" not in refused.content.decode()


# --- secrets, integrations, storage ------------------------------------------------------


def test_secret_values_and_credentials_never_come_back(synced, admin_user, api):
    client = api(admin_user)
    created = client.post("/api/secrets/", {"name": "db_password", "value": "pa55-w0rd-xyz"},
                          format="json")
    assert created.status_code == 201 and body(created)["value"] == "***"
    integration = client.post("/api/integrations/", {
        "name": "aws-prod", "kind": "aws", "settings": {"region": "eu-west-1"},
        "credentials": {"access_key": "AKIA-very-secret"}}, format="json")
    assert body(integration)["credentials"] == {"access_key": "***"}
    storage = client.post("/api/storage-backends/", {
        "name": "state", "kind": "s3", "settings": {"bucket": "tf"}, "integration": "aws-prod"},
        format="json")
    assert storage.status_code == 201 and body(storage)["integration"] == body(integration)["id"]
    everything = "".join(client.get(path).content.decode() for path in (
        "/api/secrets/", "/api/secrets/db_password/", "/api/integrations/",
        "/api/integrations/aws-prod/", "/api/storage-backends/"))
    assert "pa55-w0rd-xyz" not in everything and "AKIA-very-secret" not in everything
    assert Secret.objects.get().value != "pa55-w0rd-xyz"
    renamed = client.patch("/api/secrets/db_password/", {"description": "rotated"},
                           format="json")
    assert renamed.status_code == 200
    assert client.post("/api/secrets/", {"name": "bad name", "value": "x"},
                       format="json").status_code == 400
    assert client.post("/api/integrations/", {"name": "x", "kind": "nope"},
                       format="json").status_code == 400


# --- export and import --------------------------------------------------------------------


@pytest.mark.parametrize("as_", ["yaml", "json"])
def test_export_then_import_into_an_empty_installation_gives_the_same_blueprint(three_tier,
                                                                              admin_user, api,
                                                                              as_):
    client = api(admin_user)
    exported = client.get(f"/api/blueprints/{three_tier.pk}/export/?as={as_}")
    assert exported.status_code == 200
    text = exported.content.decode()
    assert "net" in text and "create_res" in text
    before = body(client.get(f"/api/blueprints/{three_tier.pk}/"))
    Blueprint.objects.all().delete()
    Template.objects.all().delete()
    content_type = "application/yaml" if as_ == "yaml" else "application/json"
    imported = client.generic("POST", "/api/blueprints/import/", text, content_type=content_type)
    assert imported.status_code == 201, imported.content
    after = body(imported)
    assert after["level_names"] == before["level_names"]
    assert len(after["wiring"]) == 2 and after["name"] == "three-tier"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: &a [1]\nb: *a\n", "aliases are not allowed"),
        ("kind: blueprint\nversion: 2\n", "Not a blueprint document"),
        ("!!python/object/apply:os.system ['true']", "Not valid YAML"),
        ("[" * 5000, "nested too deeply"),
        ("kind: blueprint\nversion: 1\ntemplates: [{name: t, workflow: nope}]\nblueprint: {}\n",
         "unregistered workflow"),
        ("kind: blueprint\nversion: 1\ntemplates: []\nblueprint: {name: x, templates: [ghost]}\n",
         "unknown template 'ghost'"),
        ("- just\n- a list\n", "must be an object"),
    ],
)
def test_hostile_or_wrong_documents_are_refused_and_change_nothing(synced, admin_user, api,
                                                                   text, problem):
    response = api(admin_user).generic("POST", "/api/blueprints/import/", text,
                                       content_type="application/yaml")
    assert response.status_code == 400, response.content
    assert problem in body(response)["detail"]
    assert not Blueprint.objects.exists() and not Template.objects.exists()


# --- hostile input on every endpoint -------------------------------------------------------


ENDPOINTS = [
    ("post", "/api/templates/"),
    ("patch", "/api/templates/{template}/"),
    ("post", "/api/blueprints/"),
    ("patch", "/api/blueprints/{blueprint}/"),
    ("post", "/api/blueprints/{blueprint}/plan/"),
    ("post", "/api/blueprints/{blueprint}/executions/"),
    ("patch", "/api/executions/{execution}/"),
    ("post", "/api/secrets/"),
    ("post", "/api/integrations/"),
    ("post", "/api/storage-backends/"),
]
HOSTILE = [
    ["not", "an", "object"],
    "just a string",
    {"name": "x\x00y", "templates": "net", "variable_overrides": "x"},
    {"name": 5, "workflow": ["create_res"], "templates": [{"a": 1}], "storage": {"a": 1},
     "variable_overrides": {"net": {"size": 1e308}}, "integrations": "all", "value": 7},
    {"name": "x" * 5000, "variables": [{"name": "n" * 500}], "wiring": [1, 2, 3],
     "parent_overrides": {"net": ["x" * 1000]}, "secrets": [None], "kind": "s3"},
    {"templates": list(range(6000)), "wiring": None, "default_variables": [],
     "source_code_versions": {"net": ["v1"]}},
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("payload", HOSTILE)
def test_hostile_payloads_are_a_4xx_with_the_error_shape_never_a_500(execution, admin_user, api,
                                                                     method, path, payload):
    template = Template.objects.get(name="net")
    url = path.format(template=template.pk, blueprint=execution.blueprint_id,
                      execution=execution.pk)
    counts = (Template.objects.count(), Blueprint.objects.count(), Execution.objects.count())
    response = getattr(api(admin_user), method)(url, payload, format="json")
    assert 400 <= response.status_code < 500, (url, response.status_code, response.content)
    assert "detail" in body(response)
    assert (Template.objects.count(), Blueprint.objects.count(),
            Execution.objects.count()) == counts


@pytest.mark.parametrize("body_text", ["{broken", "\x00", "[" * 100000, '{"a": "\\ud800"}'])
@pytest.mark.parametrize(("method", "path"), ENDPOINTS[:3] + ENDPOINTS[5:6])
def test_malformed_json_is_a_400(execution, admin_user, api, method, path, body_text):
    url = path.format(template=1, blueprint=execution.blueprint_id, execution=execution.pk)
    response = api(admin_user).generic(method.upper(), url, body_text,
                                       content_type="application/json")
    assert response.status_code == 400 and "detail" in body(response)


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_an_oversized_body_is_a_413(three_tier, admin_user, api):
    big = {"name": "big", "description": "x" * 20_000, "templates": []}
    response = api(admin_user).post("/api/blueprints/", big, format="json")
    assert response.status_code == 413 and "detail" in body(response)
    imported = api(admin_user).generic("POST", "/api/blueprints/import/", "a: " + "x" * 20_000,
                                       content_type="application/yaml")
    assert imported.status_code in (400, 413)


@pytest.mark.parametrize("ref", ["999999", "nope", ANY_UUID, "x" * 3000, "%00", "1.5"])
@pytest.mark.parametrize("path", ["/api/templates/{}/", "/api/blueprints/{}/",
                                  "/api/blueprints/{}/plan/", "/api/executions/{}/",
                                  "/api/secrets/{}/", "/api/integrations/{}/",
                                  "/api/storage-backends/{}/", "/api/blueprints/{}/export/"])
def test_unknown_or_malformed_ids_are_a_404(synced, admin_user, api, path, ref):
    response = api(admin_user).get(path.format(ref))
    assert response.status_code == 404 and "detail" in body(response)


def test_anonymous_callers_are_refused(execution, api):
    client = api()
    for method, path in [("get", "/api/blueprints/"), ("get", "/api/templates/"),
                         ("get", f"/api/executions/{execution.pk}/"),
                         ("post", f"/api/executions/{execution.pk}/execute/"),
                         ("get", "/api/secrets/")]:
        assert getattr(client, method)(path).status_code in (401, 403)
    execution.refresh_from_db()
    assert execution.status == "pending"


def test_the_execute_endpoint_reports_a_disabled_blueprint(execution, operator, admin_user, api):
    api(admin_user).patch(f"/api/blueprints/{execution.blueprint_id}/", {"enabled": False},
                          format="json")
    response = api(operator).post(f"/api/executions/{execution.pk}/execute/")
    assert response.status_code == 409 and "disabled" in body(response)["detail"]


def test_list_filters_and_pagination(execution, viewer, api):
    client = api(viewer)
    assert body(client.get("/api/executions/?status=pending"))["count"] == 1
    assert body(client.get("/api/executions/?status=done"))["count"] == 0
    assert client.get("/api/executions/?status=bogus").status_code == 400
    assert body(client.get(f"/api/executions/?blueprint={execution.blueprint_id}"))["count"] == 1
    assert body(client.get("/api/templates/?limit=1"))["next"]
    assert RES_OUTPUTS  # the helpers' template is what the API lists
