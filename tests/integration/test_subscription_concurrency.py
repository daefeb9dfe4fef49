"""In-sync locking under real concurrency (DESIGN §5), and a demo Node made by a real worker.

Two starts of a modify workflow on one subscription, released at the same instant from two
threads (each with its own database connection): exactly one process is created, the other
start is refused naming it. A real worker then completes the winner and the next round
races on the same subscription again. Run it on PostgreSQL (row lock, READ COMMITTED) as
well as on SQLite (IMMEDIATE transactions serialise the writers):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orchestrator \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/9 \\
    python -m pytest tests/integration/test_subscription_concurrency.py
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from orchestrator import services
from orchestrator.exceptions import Conflict
from orchestrator.models import Process
from subscriptions import demo
from subscriptions.models import Product, ProductType, Subscription
from tests.conftest import wait_for
from tests.helpers import race

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROUNDS = 50


@pytest.fixture
def subscription(synced) -> Subscription:
    product = Product.objects.create(
        name="Contended", product_type=ProductType.objects.create(name="Contended")
    )
    return Subscription.objects.create(
        product=product, customer_id="c1", description="contended", status="active",
        insync=True,
    )


def modify_processes(subscription: Subscription):
    return Process.objects.filter(subscriptions=subscription, workflow__name="modify_note")


def finish(process_id: Any, subscription: Subscription) -> None:
    """Let the worker complete the winner; the subscription is back in sync after it."""
    wait_for(lambda: Process.objects.filter(pk=process_id, status="completed").exists(),
             timeout=60, interval=0.02)
    assert Subscription.objects.get(pk=subscription.pk).insync


def test_two_modify_starts_at_once_make_exactly_one_process(subscription, celery_worker):
    def start(note: str) -> Callable[[], Process]:
        return lambda: services.start_process(
            workflow_name="modify_note", subscription=subscription.pk, input_pages=[{"note": note}]
        )

    for round_number in range(ROUNDS):
        before = modify_processes(subscription).count()
        outcomes = race([start(f"{round_number}-a"), start(f"{round_number}-b")])
        winners = [o for o in outcomes if isinstance(o, Process)]
        losers = [o for o in outcomes if isinstance(o, Conflict)]
        assert (len(winners), len(losers)) == (1, 1), f"round {round_number}: {outcomes!r}"
        assert modify_processes(subscription).count() == before + 1
        (winner,), (loser,) = winners, losers
        assert str(winner.pk) in loser.message, loser.message
        assert "out of sync" in loser.message
        finish(winner.pk, subscription)
        note = Subscription.objects.values_list("note", flat=True).get(pk=subscription.pk)
        assert note == winner.state["note"]
    assert modify_processes(subscription).count() == ROUNDS


def test_two_api_starts_at_once_get_201_and_409(subscription, operator, celery_worker):
    from rest_framework.test import APIClient

    def start(note: str) -> Callable[[], Any]:
        def post():
            client = APIClient()
            client.force_authenticate(operator)
            return client.post(
                "/api/processes/",
                {"workflow": "modify_note", "subscription": str(subscription.pk),
                 "input": [{"note": note}]},
                format="json",
            )

        return post

    for round_number in range(ROUNDS):
        outcomes = race([start(f"{round_number}-a"), start(f"{round_number}-b")])
        codes = sorted(getattr(o, "status_code", repr(o)) for o in outcomes)
        assert codes == [201, 409], f"round {round_number}: {outcomes!r}"
        created = next(o for o in outcomes if o.status_code == 201).json()
        refused = next(o for o in outcomes if o.status_code == 409).json()
        assert created["id"] in refused["detail"], refused
        finish(created["id"], subscription)
    assert modify_processes(subscription).count() == ROUNDS


def test_a_node_created_through_the_worker_ends_active_after_confirmation(
    synced, celery_worker
):
    products = demo.ensure_catalogue()
    process = services.start_process(
        workflow_name="create_node",
        product=products["Node"].pk,
        input_pages=[{"customer_id": "noc", "hostname": "ams-core-09", "role": "core",
                      "site": "AMS1"}],
    )
    wait_for(lambda: Process.objects.filter(pk=process.pk, status="suspended").exists())
    process.refresh_from_db()
    assert process.planned_steps[process.position] == "Confirm node configuration"
    node = Subscription.objects.get(pk=process.state["subscription_id"])
    assert (node.status, node.insync) == ("provisioning", False)
    services.resume_process(process=process, input_pages=[{"confirm": True}])
    wait_for(lambda: Process.objects.filter(pk=process.pk, status="completed").exists())
    node.refresh_from_db()
    assert (node.status, node.insync) == ("active", True)
    assert node.instance_values["loopback"] == "10.255.255.1"
    assert "set system host-name ams-core-09" in node.instance_values["config"]
    steps = list(process.steps.order_by("pk").values_list("name", "status"))
    assert ("Confirm node configuration", "suspend") in steps
    assert steps[-1] == ("Done", "complete")
