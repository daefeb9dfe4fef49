"""The product and subscription API (DESIGN §8), and starting processes on them."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from orchestrator import services
from orchestrator.models import Process
from orchestrator.runner import run_process
from subscriptions.models import FixedInput, ProductBlock, Subscription
from tests.helpers import run

pytestmark = pytest.mark.django_db

NO_SUCH_ID = "8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11"


def start_on(subscription: Subscription, workflow: str, *pages: dict, user=None) -> Process:
    return services.start_process(
        workflow_name=workflow, subscription=subscription.pk, input_pages=list(pages), user=user
    )


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def plain_subscription(product, n: int, **values) -> Subscription:
    """A row without running a workflow (for volume and filter tests)."""
    defaults = {
        "description": f"plain {n}",
        "customer_id": f"plain-cust-{n}",
        "status": "active",
        "insync": True,
    }
    return Subscription.objects.create(product=product, **{**defaults, **values})


# --- anonymous ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/products/"),
        ("get", "/api/products/{product}/"),
        ("get", "/api/subscriptions/"),
        ("get", "/api/subscriptions/{subscription}/"),
        ("get", "/api/subscriptions/{subscription}/workflows/"),
        ("post", "/api/subscriptions/{subscription}/set_in_sync/"),
    ],
)
def test_anonymous_is_refused(create_box, box_product, api, method, path):
    box = create_box()
    Subscription.objects.filter(pk=box.pk).update(insync=False)
    url = path.format(product=box_product.pk, subscription=box.pk)
    response = getattr(api(), method)(url, format="json")
    assert response.status_code in (401, 403)
    assert "detail" in response.json()
    box.refresh_from_db()
    assert box.insync is False


# --- products -------------------------------------------------------------------------------


def test_products_list_and_detail(box_product, viewer, api):
    FixedInput.objects.create(product=box_product, name="speed", value="10G")
    block = ProductBlock.objects.create(name="BoxBlock")
    box_product.product_blocks.add(block)
    client = api(viewer)
    body = client.get("/api/products/").json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["name"] == "Box" and row["product_type"] == "Box" and row["tag"] == "BOX"
    assert row["status"] == "active"
    assert row["fixed_inputs"] == [{"name": "speed", "value": "10G"}]
    assert row["product_blocks"] == ["BoxBlock"]
    assert row["workflows"] == sorted(
        ["create_box", "modify_box", "terminate_box", "validate_box", "modify_note"]
    )
    assert client.get(f"/api/products/{box_product.pk}/").json() == row
    assert client.get("/api/products/Box/").json()["id"] == box_product.pk
    assert ids(client.get("/api/products/?tag=BOX")) == {box_product.pk}
    assert ids(client.get("/api/products/?tag=NOPE")) == set()
    for missing in ("99999", "nope", "9" * 40, "%00"):
        response = client.get(f"/api/products/{missing}/")
        assert response.status_code == 404 and "detail" in response.json(), missing


def test_products_are_hidden_from_users_without_the_view_permission(box_product, nobody, api):
    client = api(nobody)
    assert client.get("/api/products/").json()["count"] == 0
    assert client.get(f"/api/products/{box_product.pk}/").status_code == 404
    assign_perm("subscriptions.view_product", nobody, box_product)
    assert ids(client.get("/api/products/")) == {box_product.pk}


# --- subscription list ------------------------------------------------------------------------


def test_subscription_list_filters_and_search(create_box, box_product, viewer, api):
    box = create_box("alpha")
    other = plain_subscription(
        box_product, 1, description="Uplink Amsterdam", customer_id="ACME-7", insync=False
    )
    ended = plain_subscription(box_product, 2, status="terminated")
    client = api(viewer)
    body = client.get("/api/subscriptions/").json()
    assert {"count", "next", "previous", "results"} <= set(body)
    everything = {str(box.pk), str(other.pk), str(ended.pk)}
    assert ids(client.get("/api/subscriptions/")) == everything
    assert ids(client.get(f"/api/subscriptions/?product={box_product.pk}")) == everything
    assert ids(client.get("/api/subscriptions/?product=Box")) == everything
    assert ids(client.get("/api/subscriptions/?product=Nope")) == set()
    assert ids(client.get("/api/subscriptions/?product=99999")) == set()
    assert ids(client.get("/api/subscriptions/?status=terminated")) == {str(ended.pk)}
    assert ids(client.get("/api/subscriptions/?insync=false")) == {str(other.pk)}
    assert ids(client.get("/api/subscriptions/?insync=true&status=active")) == {str(box.pk)}
    assert ids(client.get("/api/subscriptions/?customer_id=ACME-7")) == {str(other.pk)}
    assert ids(client.get("/api/subscriptions/?customer_id=ACME")) == set()
    assert ids(client.get("/api/subscriptions/?search=amsterdam")) == {str(other.pk)}
    assert ids(client.get("/api/subscriptions/?search=acme")) == {str(other.pk)}
    assert ids(client.get("/api/subscriptions/?search=box%20alp")) == {str(box.pk)}
    assert ids(client.get("/api/subscriptions/?search=ALPHA&status=terminated")) == set()
    row = next(r for r in body["results"] if r["id"] == str(box.pk))
    assert row["product"] == {"id": box_product.pk, "name": "Box", "tag": "BOX",
                              "product_type": "Box"}
    assert row["description"] == "Box alpha" and row["version"] == box.version


def test_subscription_list_is_paginated(box_product, viewer, api):
    for n in range(7):
        plain_subscription(box_product, n)
    body = api(viewer).get("/api/subscriptions/?limit=3&offset=3").json()
    assert body["count"] == 7 and body["count_exact"] is True and len(body["results"]) == 3
    assert body["next"] and body["previous"]


def test_subscription_count_is_capped_and_says_so(box_product, viewer, api, monkeypatch):
    """Past COUNT_CAP rows (or the requested page's end, when further) `count` is a lower
    bound and `count_exact` false; `next` still leads through every row."""
    monkeypatch.setattr("orchestrator.pagination.COUNT_CAP", 5)
    rows = {str(plain_subscription(box_product, n).pk) for n in range(9)}
    client = api(viewer)
    body = client.get("/api/subscriptions/?limit=3").json()
    assert (body["count"], body["count_exact"]) == (6, False) and body["next"]
    body = client.get("/api/subscriptions/?limit=3&offset=3").json()
    assert (body["count"], body["count_exact"]) == (7, False) and body["next"]
    body = client.get("/api/subscriptions/?limit=3&offset=6").json()
    assert (body["count"], body["count_exact"], body["next"]) == (9, True, None)
    body = client.get("/api/subscriptions/?search=plain 1").json()
    assert (body["count"], body["count_exact"]) == (1, True)
    seen, url = set(), "/api/subscriptions/?limit=2"
    while url:
        body = client.get(url).json()
        seen |= {row["id"] for row in body["results"]}
        url = body["next"]
    assert seen == rows


def test_list_queries_do_not_grow_with_the_rows(box_product, viewer, api):
    client = api(viewer)
    for n in range(5):
        plain_subscription(box_product, n)
    client.get("/api/subscriptions/")  # warm up the permission caches
    with CaptureQueriesContext(connection) as few:
        assert len(client.get("/api/subscriptions/").json()["results"]) == 5
    for n in range(5, 40):
        plain_subscription(box_product, n)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get("/api/subscriptions/").json()["results"]) == 40
    assert len(many) == len(few)
    # The list never reads the values and notes only the detail shows.
    assert not any('"instance_values"' in query["sql"] for query in many.captured_queries)
    client.get("/api/products/")  # warm up the product content type cache
    with CaptureQueriesContext(connection) as products_few:
        client.get("/api/products/")
    for n in range(10):
        product = type(box_product).objects.create(
            name=f"P{n}", product_type=box_product.product_type
        )
        product.workflows.set(box_product.workflows.all())
        FixedInput.objects.create(product=product, name="speed", value=str(n))
    with CaptureQueriesContext(connection) as products_many:
        assert client.get("/api/products/").json()["count"] == 11
    assert len(products_many) == len(products_few)


def test_per_object_grant_makes_exactly_that_subscription_visible(create_box, nobody, api):
    seen, unseen = create_box("seen"), create_box("unseen")
    client = api(nobody)
    assert ids(client.get("/api/subscriptions/")) == set()
    assert client.get(f"/api/subscriptions/{seen.pk}/").status_code == 404
    assign_perm("subscriptions.view_subscription", nobody, seen)
    assert ids(client.get("/api/subscriptions/")) == {str(seen.pk)}
    assert ids(client.get("/api/subscriptions/?search=unseen")) == set()
    assert client.get(f"/api/subscriptions/{seen.pk}/").status_code == 200
    for path in ("", "workflows/"):
        response = client.get(f"/api/subscriptions/{unseen.pk}/{path}")
        assert response.status_code == 404 and "detail" in response.json()
    # The process that created it stays hidden: no view permission on processes.
    assert client.get(f"/api/subscriptions/{seen.pk}/").json()["processes"] == []


# --- subscription detail ----------------------------------------------------------------------


def test_subscription_detail_with_relations_processes_and_sync_state(create_box, viewer, api):
    base = create_box("base")
    user = create_box("user", depends_on=str(base.pk))
    client = api(viewer)
    body = client.get(f"/api/subscriptions/{base.pk}/").json()
    assert body["id"] == str(base.pk) and body["description"] == "Box base"
    assert body["customer_id"] == "cust-1" and body["status"] == "active"
    assert body["insync"] is True and body["version"] == base.version
    assert body["instance_values"] == {"name": "base", "size": 5}
    assert body["product"]["name"] == "Box"
    assert body["depends_on"] == []
    assert body["in_use_by"] == [{"id": str(user.pk), "description": "Box user"}]
    assert [p["workflow"] for p in body["processes"]] == ["create_box"]
    assert set(body["processes"][0]) == {"id", "workflow", "status", "started_at"}
    assert body["out_of_sync_reason"] is None and body["held_by"] == []
    assert body["start_date"] and body["note"] == ""
    assert client.get(f"/api/subscriptions/{user.pk}/").json()["depends_on"] == [
        {"id": str(base.pk), "description": "Box base"}
    ]

    modify = start_on(base, "modify_box", {"size": 8})
    body = client.get(f"/api/subscriptions/{base.pk}/").json()
    assert body["insync"] is False
    assert str(modify.pk) in body["out_of_sync_reason"]
    assert body["held_by"] == [
        {"id": str(modify.pk), "workflow": "modify_box", "status": "created",
         "started_at": body["held_by"][0]["started_at"]}
    ]
    assert [p["workflow"] for p in body["processes"]] == ["modify_box", "create_box"]


@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", NO_SUCH_ID, "1", "x" * 300, "%00", "'; drop table x; --", "{0}"],
)
def test_unknown_or_malformed_ids_are_json_404s(create_box, admin_user, api, bad_id):
    create_box()
    client = api(admin_user)
    for method, path in (
        ("get", ""),
        ("get", "workflows/"),
        ("post", "set_in_sync/"),
    ):
        response = getattr(client, method)(f"/api/subscriptions/{bad_id}/{path}", format="json")
        assert response.status_code == 404, (bad_id, path, response.status_code)
        assert "detail" in response.json()


@pytest.mark.parametrize(
    "query",
    [
        "insync=maybe",
        "insync=",
        "status=bogus",
        "status=",
        "product=" + "9" * 50,
        "product=%00",
        "product=" + "x" * 5000,
        "search=" + "a" * 10000,
        "search=%00",
        "search=%ED%A0%80",
        "search=%25%5F",
        "customer_id=" + "c" * 5000,
        "limit=-1&offset=abc",
        "limit=99999999999999999999",
        "ordering=-password",
    ],
)
def test_hostile_list_queries_never_fail(create_box, viewer, api, query):
    create_box()
    response = api(viewer).get(f"/api/subscriptions/?{query}")
    assert response.status_code in (200, 400), (query, response.status_code)
    assert "detail" in response.json() or "results" in response.json()


def test_a_weird_boolean_is_a_400_and_search_wildcards_are_literal(create_box, viewer, api):
    create_box()
    client = api(viewer)
    maybe = client.get("/api/subscriptions/?insync=maybe")
    assert maybe.status_code == 400 and maybe.json()["insync"] == ["Enter true or false."]
    assert ids(client.get("/api/subscriptions/?search=%25")) == set()
    assert ids(client.get("/api/subscriptions/?search=_")) == set()
    too_long = client.get("/api/subscriptions/?search=" + "a" * 10000)
    assert too_long.status_code == 400 and "search" in too_long.json()


# --- workflows of a subscription ---------------------------------------------------------------


def workflows_of(client, subscription) -> dict[str, dict]:
    response = client.get(f"/api/subscriptions/{subscription.pk}/workflows/")
    assert response.status_code == 200, response.content
    return {row["name"]: row for row in response.json()}


def test_workflows_endpoint_lists_usability_and_reasons(create_box, viewer, api):
    box = create_box()
    client = api(viewer)
    rows = workflows_of(client, box)
    assert set(rows) == {"modify_box", "terminate_box", "validate_box", "modify_note"}
    assert rows["modify_box"] == {
        "name": "modify_box", "description": "Resize a box", "target": "modify",
        "is_task": False, "usable": True, "reason": None,
    }
    assert all(row["usable"] for row in rows.values())

    assert run(start_on(box, "terminate_box")).status == "completed"
    rows = workflows_of(client, box)
    assert rows["modify_box"]["usable"] is False
    assert "terminated" in rows["modify_box"]["reason"]
    assert rows["terminate_box"]["usable"] is False


def test_out_of_sync_reason_names_the_holding_process(create_box, viewer, api):
    box = create_box()
    failed = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    assert failed.status == "failed"
    rows = workflows_of(api(viewer), box)
    assert rows["modify_note"]["usable"] is False
    assert str(failed.pk) in rows["modify_note"]["reason"]
    assert "out of sync" in rows["modify_note"]["reason"]
    assert rows["validate_box"]["usable"] is True  # validation runs on out-of-sync ones too


# --- set in sync ----------------------------------------------------------------------------


def test_set_in_sync_needs_the_permission_and_no_holding_process(
    create_box, viewer, operator, admin_user, api
):
    box = create_box()
    modify = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    url = f"/api/subscriptions/{box.pk}/set_in_sync/"
    for user in (viewer, operator):
        response = api(user).post(url, format="json")
        assert response.status_code == 403 and "set_in_sync" in response.json()["detail"]
    held = api(admin_user).post(url, format="json")
    assert held.status_code == 409 and str(modify.pk) in held.json()["detail"]
    box.refresh_from_db()
    assert box.insync is False
    services.abort_process(process=modify, user=admin_user)
    response = api(admin_user).post(url, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["insync"] is True and response.json()["out_of_sync_reason"] is None
    box.refresh_from_db()
    assert box.insync is True


def test_set_in_sync_per_object_grant(create_box, nobody, api):
    box = create_box()
    Subscription.objects.filter(pk=box.pk).update(insync=False)
    client = api(nobody)
    url = f"/api/subscriptions/{box.pk}/set_in_sync/"
    assert client.post(url, format="json").status_code == 404  # may not even see it
    assign_perm("subscriptions.view_subscription", nobody, box)
    assert client.post(url, format="json").status_code == 403
    assign_perm("subscriptions.set_in_sync", nobody, box)
    assert client.post(url, format="json").status_code == 200
    box.refresh_from_db()
    assert box.insync is True


# --- starting processes on subscriptions and products ------------------------------------------


def start(client, workflow: str, **payload):
    return client.post("/api/processes/", {"workflow": workflow, **payload}, format="json")


def test_start_on_a_subscription_then_a_second_start_is_a_409(create_box, operator, api):
    box = create_box()
    client = api(operator)
    first = start(client, "modify_box", subscription=str(box.pk), input=[{"size": 3}])
    assert first.status_code == 201, first.content
    first_id = first.json()["id"]
    assert first.json()["state"]["subscription_id"] == str(box.pk)
    box.refresh_from_db()
    assert box.insync is False
    assert ids(client.get(f"/api/processes/?subscription={box.pk}")) >= {first_id}
    assert first_id in {p["id"] for p in client.get(f"/api/subscriptions/{box.pk}/").json()[
        "processes"]}

    second = start(client, "modify_note", subscription=str(box.pk), input=[{"note": "x"}])
    assert second.status_code == 409
    assert first_id in second.json()["detail"]
    assert Process.objects.filter(workflow__name="modify_note").count() == 0


def test_start_refusals_map_to_their_status(create_box, operator, api):
    box = create_box()
    client = api(operator)
    for bad in (NO_SUCH_ID, "not-a-uuid", "x" * 255):
        response = start(client, "modify_box", subscription=bad, input=[{"size": 3}])
        assert response.status_code == 404, bad
        assert "Unknown subscription" in response.json()["detail"]
    too_long = start(client, "modify_box", subscription="x" * 256, input=[{"size": 3}])
    assert too_long.status_code == 400 and "subscription" in too_long.json()
    missing = start(client, "modify_box", input=[{"size": 3}])
    assert missing.status_code == 400 and "subscription" in missing.json()

    stale = start(client, "modify_note", subscription=str(box.pk),
                  input=[{"note": "x", "version": 1}])
    assert stale.status_code == 400
    assert stale.json()["detail"] == (
        f"Stale data: given version 1 does not match the current version {box.version}"
    )
    assert "version" in stale.json()

    run(start_on(box, "terminate_box"))
    terminated = start(client, "modify_box", subscription=str(box.pk), input=[{"size": 3}])
    assert terminated.status_code == 409 and "terminated" in terminated.json()["detail"]
    box.refresh_from_db()
    assert box.insync is True and box.note == ""


def test_start_on_an_invisible_subscription_is_a_404(create_box, operator, api):
    from django.contrib.auth.models import Permission

    box = create_box()
    operator.groups.first().permissions.remove(
        Permission.objects.get(codename="view_subscription")
    )
    response = start(api(operator), "modify_box", subscription=str(box.pk), input=[{"size": 3}])
    assert response.status_code == 404
    box.refresh_from_db()
    assert box.insync is True and not box.processes.exclude(workflow__name="create_box").exists()


def test_create_with_a_product_by_id_or_name(box_product, operator, api):
    client = api(operator)
    page = {"customer_id": "c-9", "name": "new", "size": 2}
    by_id = start(client, "create_box", product=box_product.pk, input=[page])
    assert by_id.status_code == 201, by_id.content
    assert by_id.json()["state"]["product"] == box_product.pk
    by_name = start(client, "create_box", product="Box", input=[page])
    assert by_name.status_code == 201, by_name.content
    run_process(by_name.json()["id"])
    created = Subscription.objects.get(description="Box new")
    assert created.product == box_product and created.insync is True
    unknown = start(client, "create_box", product="Nope", input=[page])
    assert unknown.status_code == 404 and "Unknown product" in unknown.json()["detail"]
    missing = start(client, "create_box", input=[page])
    assert missing.status_code == 400 and "product" in missing.json()
