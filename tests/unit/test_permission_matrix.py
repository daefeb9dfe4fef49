"""The permission matrix (issue 7 item 23): every role × every page and API endpoint × action ×
object (one the "grants" user was granted, one nobody granted them), generated from ONE table.

How to add an endpoint (blueprints, flows, anything new):

1. If it works on an object, put two of them in `build_world()`: a *granted* one (give the
   "grants" user its object permissions there) and an *other* one nobody granted; name the
   pair in `world.objects[<placeholder>] = (granted, other)` and the other one's tell-tale
   strings (id, name, description) in `world.hidden`.
2. Add one `Row` per method and path to `TABLE`, with `{placeholder}` in the path or body
   for the object. `expect` lists the status for each role in `ROLES` order; for a path with
   an object write `granted|other` (one number means both).
3. `test_every_route_has_a_row` fails until every named URL of the project is in the table
   (add yours to `NOT_IN_MATRIX` only with a reason).

Every answer to a user who may not see everything (anonymous, no role, object grants only) is
also checked for leaks: none of `world.hidden` may appear in it (unless the request itself
carried it), and a list's `count` is the number of rows it shows. Each request runs in a
savepoint that is rolled back, so actions (start, abort, delete...) never affect the next one;
the world is built once for the module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django_celery_beat.models import PeriodicTask
from guardian.shortcuts import assign_perm
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "nobody", "grants", "viewer", "operator", "admin", "superuser")
# Roles that may not see everything: their answers must not leak the world's hidden objects.
RESTRICTED = ("anonymous", "nobody", "grants")


@dataclass(frozen=True)
class Row:
    method: str
    path: str
    expect: str  # one status per role, in ROLES order; "granted|other" where the path has one
    body: dict[str, Any] | None = None

    @property
    def placeholder(self) -> str | None:
        text = self.path + json.dumps(self.body or {})
        return next((name for name in PLACEHOLDERS if "{" + name + "}" in text), None)

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


PLACEHOLDERS = ("workflow", "process", "subscription", "product", "schedule", "audit",
                "template", "blueprint", "execution", "integration", "secret", "storage")
IMPORTED = {"kind": "blueprint", "version": 1,
            "templates": [{"name": "imported-template", "workflow": "task_echo",
                           "variables": [{"name": "text", "default": "x"}]}],
            "blueprint": {"name": "imported-blueprint", "templates": ["imported-template"]}}

# fmt: off
TABLE = [
    # ---- the engine's API (expect: anonymous nobody grants viewer operator admin superuser)
    Row("POST", "/api/auth/token/", "400 400 400 400 400 400 400",
        {"username": "grants", "password": "wrong"}),
    Row("GET", "/api/schema/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/docs/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/workflows/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/workflows/{workflow}/", "401 404 200|404 200 200 200 200"),
    Row("GET", "/api/workflows/create_box/", "401 404 200 200 200 200 200"),  # a choice form
    Row("POST", "/api/processes/", "401 404 201|404 403 201 201 201", {"workflow": "{workflow}"}),
    Row("POST", "/api/processes/", "401 404 201|400 403 201|201 201 201",  # a hidden choice
        {"workflow": "create_box", "product": "Box", "input": [
            {"customer_id": "c", "name": "n", "size": 1, "depends_on": "{subscription}"}]}),
    Row("POST", "/api/processes/batch/", "401 404 201|404 403 201 201 201",
        {"runs": [{"workflow": "{workflow}"}]}),
    Row("GET", "/api/processes/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/processes/?workflow=modify_box", "401 200 200 200 200 200 200"),
    Row("GET", "/api/processes/{process}/", "401 404 200|404 200 200 200 200"),
    Row("GET", "/api/processes/{process}/logs/", "401 404 200|404 200 200 200 200"),
    Row("POST", "/api/processes/{process}/resume/", "401 404 200|404 403 200|409 200|409 200|409",
        {}),
    Row("POST", "/api/processes/{process}/abort/", "401 404 200|404 403 200 200 200"),
    Row("DELETE", "/api/processes/{process}/", "401 404 204|404 403 403 204|409 204|409"),
    Row("POST", "/api/processes/{process}/callback/bogus-token/", "404 404 404 404 404 404 404",
        {"ok": True}),
    Row("POST", "/api/processes/{process}/callback/bogus-token/progress/",
        "404 404 404 404 404 404 404", {"message": "half way"}),
    Row("GET", "/api/engine/", "401 200 200 200 200 200 200"),
    Row("POST", "/api/engine/", "401 403 403 403 403 200 200", {"paused": False}),
    Row("GET", "/api/schedules/", "401 403 403 200 200 200 200"),
    Row("GET", "/api/schedules/{schedule}/", "401 403 403 200 200 200 200"),
    Row("GET", "/api/audit/", "401 403 403 403 403 200 200"),
    Row("GET", "/api/workers/", "401 403 403 200 200 200 200"),
    Row("GET", "/api/audit/{audit}/", "401 403 403 403 403 200 200"),
    # ---- the subscriptions API ------------------------------------------------
    Row("GET", "/api/products/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/products/{product}/", "401 404 200|404 200 200 200 200"),
    Row("GET", "/api/subscriptions/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/subscriptions/?search=hidden", "401 200 200 200 200 200 200"),
    Row("GET", "/api/subscriptions/{subscription}/", "401 404 200|404 200 200 200 200"),
    Row("GET", "/api/subscriptions/{subscription}/workflows/", "401 404 200|404 200 200 200 200"),
    Row("POST", "/api/subscriptions/{subscription}/set_in_sync/",
        "401 404 409|404 403 403 409|200 409|200"),
    # ---- the blueprints API -------------------------------------------------------
    Row("GET", "/api/templates/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/templates/{template}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/templates/{template}/", "401 404 403|404 403 403 200 200",
        {"description": "changed"}),
    Row("DELETE", "/api/templates/{template}/", "401 404 403|404 403 403 409 409"),  # in use
    Row("GET", "/api/blueprints/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/blueprints/{blueprint}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/blueprints/{blueprint}/", "401 404 403|404 403 403 200 200",
        {"description": "changed"}),
    Row("DELETE", "/api/blueprints/{blueprint}/", "401 404 403|404 403 403 409 409"),  # runs
    Row("GET", "/api/blueprints/{blueprint}/plan/", "401 404 200|404 200 200 200 200"),
    Row("POST", "/api/blueprints/{blueprint}/plan/", "401 404 200|404 200 200 200 200", {}),
    Row("GET", "/api/blueprints/{blueprint}/executions/", "401 404 200|404 200 200 200 200"),
    Row("POST", "/api/blueprints/{blueprint}/executions/", "401 404 201|404 403 201 201 201",
        {}),
    Row("GET", "/api/blueprints/{blueprint}/export/", "401 404 200|404 200 200 200 200"),
    Row("POST", "/api/blueprints/import/", "401 403 403 403 403 201 201", IMPORTED),
    Row("GET", "/api/executions/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/executions/{execution}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/executions/{execution}/", "401 404 200|404 403 200 200 200", {}),
    Row("POST", "/api/executions/{execution}/execute/", "401 404 200|404 403 200 200 200"),
    Row("POST", "/api/executions/{execution}/teardown/",  # pending: nothing to tear down
        "401 404 403|404 403 403 409 409"),
    Row("DELETE", "/api/executions/{execution}/", "401 404 403|404 403 403 204 204"),
    Row("GET", "/api/integrations/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/integrations/{integration}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/integrations/{integration}/", "401 404 403|404 403 403 200 200",
        {"description": "changed"}),
    Row("DELETE", "/api/integrations/{integration}/", "401 404 403|404 403 403 204 204"),
    Row("GET", "/api/secrets/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/secrets/{secret}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/secrets/{secret}/", "401 404 403|404 403 403 200 200",
        {"description": "changed"}),
    Row("DELETE", "/api/secrets/{secret}/", "401 404 403|404 403 403 204 204"),
    Row("GET", "/api/storage-backends/", "401 200 200 200 200 200 200"),
    Row("GET", "/api/storage-backends/{storage}/", "401 404 200|404 200 200 200 200"),
    Row("PATCH", "/api/storage-backends/{storage}/", "401 404 403|404 403 403 200 200",
        {"description": "changed"}),
    Row("DELETE", "/api/storage-backends/{storage}/", "401 404 403|404 403 403 204 204"),
    # ---- pages (anonymous users are sent to the login page: 302) ----------------
    Row("GET", "/login/", "200 200 200 200 200 200 200"),
    Row("POST", "/logout/", "302 302 302 302 302 302 302"),
    Row("GET", "/", "302 200 200 200 200 200 200"),
    Row("GET", "/healthz", "200 200 200 200 200 200 200"),  # for load balancers: no login
    Row("GET", "/metrics", "401 403 403 403 403 200 200"),  # or a bearer token (test_metrics)
    Row("POST", "/engine/", "302 403 403 403 403 302 302", {"paused": "0"}),
    Row("GET", "/workflows/", "302 200 200 200 200 200 200"),
    Row("GET", "/workflows/{workflow}/start/", "302 404 200|404 403 200 200 200"),
    Row("POST", "/workflows/{workflow}/start/", "302 404 302|404 403 302 302 302", {}),
    Row("GET", "/workflows/create_box/start/?product={product}",
        "302 404 200|404 403 200 200 200"),
    Row("GET", "/processes/", "302 200 200 200 200 200 200"),
    Row("GET", "/processes/{process}/", "302 404 200|404 200 200 200 200"),
    Row("GET", "/processes/{process}/fragment/", "302 404 200|404 200 200 200 200"),
    Row("POST", "/processes/{process}/resume/", "302 404 302|404 403 302 302 302", {}),
    Row("POST", "/processes/{process}/abort/", "302 404 302|404 403 302 302 302", {}),
    Row("POST", "/processes/{process}/delete/", "302 404 302|404 403 403 302 302", {}),
    Row("GET", "/schedules/", "302 403 403 200 200 200 200"),
    Row("GET", "/audit/", "302 403 403 403 403 200 200"),
    Row("GET", "/workers/", "302 403 403 200 200 200 200"),
    Row("GET", "/subscriptions/", "302 200 200 200 200 200 200"),
    Row("GET", "/subscriptions/?search=hidden", "302 200 200 200 200 200 200"),
    Row("GET", "/subscriptions/products/", "302 200 200 200 200 200 200"),
    Row("GET", "/subscriptions/{subscription}/", "302 404 200|404 200 200 200 200"),
    Row("POST", "/subscriptions/{subscription}/set-in-sync/", "302 404 302|404 403 403 302 302",
        {}),
    Row("GET", "/blueprints/", "302 200 200 200 200 200 200"),
    Row("GET", "/blueprints/{blueprint}/", "302 404 200|404 200 200 200 200"),
    Row("POST", "/blueprints/{blueprint}/execute/", "302 404 302|404 403 302 302 302", {}),
    Row("GET", "/blueprints/templates/", "302 200 200 200 200 200 200"),
    Row("GET", "/blueprints/templates/{template}/", "302 404 200|404 200 200 200 200"),
    Row("GET", "/blueprints/executions/", "302 200 200 200 200 200 200"),
    Row("GET", "/blueprints/executions/?blueprint={blueprint}",  # a hidden one: unreadable
        "302 400 200|400 200 200 200 200"),
    Row("GET", "/blueprints/executions/{execution}/", "302 404 200|404 200 200 200 200"),
    Row("GET", "/blueprints/executions/{execution}/fragment/", "302 404 200|404 200 200 200 200"),
    Row("POST", "/blueprints/executions/{execution}/update/", "302 404 302|404 403 302 302 302",
        {}),
    Row("POST", "/blueprints/executions/{execution}/teardown/",  # pending: refused, said why
        "302 404 403|404 403 403 302 302", {}),
    Row("POST", "/blueprints/executions/{execution}/delete/", "302 404 403|404 403 403 302 302",
        {}),
    # ---- the Django admin: staff only (the role users are not staff) ------------
    Row("GET", "/admin/", "302 302 302 302 302 302 200"),
    Row("GET", "/admin/orchestrator/process/", "302 302 302 302 302 302 200"),
]
# fmt: on

# Named URLs the table does not need to cover, each with its reason.
NOT_IN_MATRIX: dict[str, str] = {}


@dataclass
class World:
    users: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, tuple[str, str]] = field(default_factory=dict)
    hidden: list[str] = field(default_factory=list)  # what restricted roles must never read


def build_world() -> World:
    """Users for every role and, per kind of object, one granted to "grants" and one not."""
    from orchestrator import services
    from orchestrator.audit import record_action
    from orchestrator.models import Process, Workflow
    from orchestrator.roles import sync_role_groups
    from orchestrator.runner import run_process
    from orchestrator.schedules import ensure_sweep_schedule
    from subscriptions.models import Product, ProductType, Subscription
    from tests.conftest import BOX_WORKFLOWS
    from tests.factories import user_with_role

    sync_role_groups()
    services.sync_workflows()
    ensure_sweep_schedule()
    world = World()
    world.users = {
        "anonymous": None,
        "nobody": user_with_role(None, username="nobody"),
        "grants": user_with_role(None, username="grants"),
        "viewer": user_with_role("viewer", username="viewer"),
        "operator": user_with_role("operator", username="operator"),
        "admin": user_with_role("admin", username="admin"),
        "superuser": user_with_role(None, username="root", is_superuser=True, is_staff=True),
    }
    grants = world.users["grants"]

    box = Product.objects.create(
        name="Box", product_type=ProductType.objects.create(name="Box"), tag="BOX"
    )
    box.workflows.set(Workflow.objects.filter(name__in=BOX_WORKFLOWS))
    hidden_product = Product.objects.create(
        name="Zeta Hidden Product", product_type=ProductType.objects.create(name="Zeta"),
        tag="ZETA",
    )

    def create_box(name: str, **extra) -> Subscription:
        page = {"customer_id": "cust", "name": name, "size": 5, **extra}
        process = services.start_process(workflow_name="create_box", product=box.pk,
                                         input_pages=[page])
        run_process(str(process.pk))
        return Subscription.objects.get(pk=Process.objects.get(pk=process.pk)
                                        .state["subscription_id"])

    mine = create_box("mine")
    theirs = create_box("theirs-hidden", depends_on=str(mine.pk))
    # An open run of the system holds `mine` out of sync: its reasons must not name it.
    holder = services.start_process(workflow_name="modify_box", subscription=mine.pk,
                                    input_pages=[{"size": 7}])
    # A failed task run, retryable and deletable...
    task = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}])
    # ... a child of that run: the grants user sees the child, never its parent's id.
    Process.objects.filter(pk=task.pk).update(status="failed", failed_reason="boom",
                                              parent=holder)

    for name in ("wf_input", "create_box"):
        workflow = Workflow.objects.get(name=name)
        assign_perm("orchestrator.view_workflow", grants, workflow)
        assign_perm("orchestrator.start_workflow", grants, workflow)
    for perm in ("view_process", "resume_process", "abort_process", "delete_process"):
        assign_perm(f"orchestrator.{perm}", grants, task)
    assign_perm("subscriptions.view_subscription", grants, mine)
    assign_perm("subscriptions.set_in_sync", grants, mine)
    assign_perm("subscriptions.view_product", grants, box)

    blueprint_objects = build_blueprint_world(grants)
    schedule = str(PeriodicTask.objects.order_by("pk").values_list("pk", flat=True).first())
    audit = record_action("engine.pause", user=world.users["admin"], summary="matrix")
    world.objects = {
        "workflow": ("wf_input", "wf_audited"),
        "process": (str(task.pk), str(holder.pk)),
        "subscription": (str(mine.pk), str(theirs.pk)),
        "product": (str(box.pk), str(hidden_product.pk)),
        "schedule": (schedule, schedule),
        "audit": (str(audit.pk), str(audit.pk)),
        **{kind: (str(mine.pk), str(other.pk))
           for kind, (mine, other) in blueprint_objects.items()},
    }
    world.hidden = [
        str(theirs.pk), theirs.description, str(holder.pk), hidden_product.name, "wf_audited",
        *(str(other) for _, other in blueprint_objects.values()),
        str(blueprint_objects["execution"][1].pk),
    ]
    return world


def build_blueprint_world(grants) -> dict[str, tuple[Any, Any]]:
    """Per kind of blueprints object, one "grants" may see (and execute, for a blueprint and
    so its executions) and one nobody granted; the hidden ones are named "...-zeta"."""
    from blueprints import services as blueprint_services

    pairs: dict[str, tuple[Any, Any]] = {}
    templates = [
        blueprint_services.save_template(data={
            "name": name, "workflow": "task_echo", "outputs": ["echoed"],
            "variables": [{"name": "text", "default": "hello"}]})
        for name in ("template-mine", "template-zeta")
    ]
    pairs["template"] = tuple(templates)
    pairs["blueprint"] = tuple(
        blueprint_services.save_blueprint(data={"name": name, "templates": [template.name]})
        for name, template in (("blueprint-mine", templates[0]), ("blueprint-zeta", templates[1]))
    )
    pairs["execution"] = tuple(blueprint_services.create_execution(blueprint=blueprint)
                               for blueprint in pairs["blueprint"])
    pairs["integration"] = tuple(blueprint_services.save_integration(
        data={"name": name, "kind": "aws"}) for name in ("integration-mine", "integration-zeta"))
    pairs["secret"] = tuple(blueprint_services.save_secret(
        data={"name": name, "value": "v"}) for name in ("secret_mine", "secret_zeta"))
    pairs["storage"] = tuple(blueprint_services.save_storage(
        data={"name": name, "kind": "s3"}) for name in ("storage-mine", "storage-zeta"))
    for perm, kind in (("view_template", "template"), ("view_blueprint", "blueprint"),
                       ("execute_blueprint", "blueprint"), ("view_integration", "integration"),
                       ("view_secret", "secret"), ("view_storagebackend", "storage")):
        assign_perm(f"blueprints.{perm}", grants, pairs[kind][0])
    return pairs


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once, inside a transaction rolled back when the module is done."""
    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


def fill(value: Any, name: str | None, object_id: str | None) -> Any:
    if name is None:
        return value
    if isinstance(value, str):
        return value.replace("{" + name + "}", object_id or "")
    if isinstance(value, dict):
        return {key: fill(item, name, object_id) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, name, object_id) for item in value]
    return value


def send(row: Row, user, object_id: str | None):
    """One request as `user`, in a savepoint rolled back afterwards."""
    path = fill(row.path, row.placeholder, object_id)
    body = fill(row.body, row.placeholder, object_id)
    with transaction.atomic():
        if row.api:
            client = APIClient()
            if user is not None:
                client.force_authenticate(user)
            kwargs = {"format": "json"} if body is not None else {}
            response = getattr(client, row.method.lower())(path, body, **kwargs)
        else:
            client = Client()
            if user is not None:
                client.force_login(user)
            response = getattr(client, row.method.lower())(path, body or {})
        transaction.set_rollback(True)
    return path, body, response


def expected(row: Row) -> list[tuple[str, str, int]]:
    """(role, "granted"/"other"/"-", status) for every request the row makes."""
    cells = row.expect.split()
    assert len(cells) == len(ROLES), f"{row.method} {row.path}: one status per role"
    cases = []
    for role, cell in zip(ROLES, cells, strict=True):
        granted, _, other = cell.partition("|")
        if row.placeholder is None:
            assert not other, f"{row.method} {row.path}: no object, so no granted|other"
            cases.append((role, "-", int(granted)))
        else:
            cases += [(role, "granted", int(granted)), (role, "other", int(other or granted))]
    return cases


def leaks(world: World, path: str, body: Any, response) -> list[str]:
    """What a restricted role read that it may not see."""
    sent = path + json.dumps(body or {})
    text = response.content.decode(errors="replace")
    found = [marker for marker in world.hidden if marker in text and marker not in sent]
    if response.get("Content-Type", "").startswith("application/json"):
        data = response.json()
        if isinstance(data, dict) and "count" in data and "results" in data and not data["next"]:
            if data["count"] != len(data["results"]):
                found.append(f"count {data['count']} for {len(data['results'])} rows")
    return found


@pytest.mark.parametrize("row", TABLE, ids=lambda row: f"{row.method} {row.path}")
def test_matrix(world, row):
    problems = []
    for role, which, status in expected(row):
        object_id = None
        if row.placeholder is not None:
            object_id = world.objects[row.placeholder][0 if which == "granted" else 1]
        path, body, response = send(row, world.users[role], object_id)
        if response.status_code != status:
            problems.append(f"{role:10} {which:8} {response.status_code} (expected {status}): "
                            f"{response.content[:200]!r}")
        if role in RESTRICTED:
            for leak in leaks(world, path, body, response):
                problems.append(f"{role:10} {which:8} LEAK {leak!r} in {path}")
    assert not problems, f"{row.method} {row.path}\n" + "\n".join(problems)


def named_routes() -> set[str]:
    names: set[str] = set()

    def walk(patterns, namespace: str = "") -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue  # Django's own admin: its login and two pages are rows above
                walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.add(f"{namespace}:{pattern.name}" if namespace else pattern.name)

    walk(get_resolver().url_patterns)
    return names


def test_every_route_has_a_row(world):
    covered = set()
    for row in TABLE:
        object_id = world.objects[row.placeholder][0] if row.placeholder else None
        path = fill(row.path, row.placeholder, object_id).split("?")[0]
        covered.add(resolve(path).view_name)
    missing = named_routes() - covered - set(NOT_IN_MATRIX)
    assert not missing, f"routes without a row in TABLE: {sorted(missing)}"
