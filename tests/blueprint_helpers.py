"""Fixtures and helpers the blueprint tests share (import them into a test module)."""

from __future__ import annotations

import pytest

from blueprints import services
from blueprints.models import Blueprint, Execution, Template
from orchestrator.models import RUNNABLE_STATUSES, Process
from orchestrator.runner import run_process


@pytest.fixture
def res_product(synced):
    """The test product "Res" (tests/blueprint_workflows.py) with its workflows."""
    from orchestrator.models import Workflow
    from subscriptions.models import Product, ProductType

    product = Product.objects.create(
        name="Res", product_type=ProductType.objects.create(name="Cloud"), tag="RES"
    )
    product.workflows.set(Workflow.objects.filter(name__in=("create_res", "terminate_res",
                                                            "modify_note")))
    return product


RES_VARIABLES = [
    {"name": "customer_id", "default": "platform"},
    {"name": "name", "required": True},
    {"name": "delay"},
    {"name": "fail", "default": False},
    {"name": "upstream_id"},
    {"name": "size"},
    {"name": "items", "type": "array"},
    {"name": "password", "secret": True},
]
RES_OUTPUTS = [{"name": "res_id", "type": "string"}, {"name": "subnets", "type": "array"},
               {"name": "received_upstream", "type": "string"}, "ran_from", "ran_to",
               "received_password_length", "received_secret_names"]


def template_payload(name: str, **extra) -> dict:
    return {"name": name, "workflow": "create_res", "product": "Res",
            "variables": RES_VARIABLES, "outputs": RES_OUTPUTS, **extra}


def make_template(name: str, **extra) -> Template:
    return services.save_template(data=template_payload(name, **extra))


def make_blueprint(name: str, templates: list[str], wiring=(), defaults=None,
                   **extra) -> Blueprint:
    return services.save_blueprint(data={
        "name": name, "templates": templates, "default_variables": defaults or {},
        "wiring": [
            {"source_template": s, "source_output": o, "target_template": t, "target_variable": v}
            for s, o, t, v in wiring
        ],
        **extra,
    })


@pytest.fixture
def three_tier(res_product):
    """net → (app, db): app and db get net's res_id as upstream_id."""
    for name in ("net", "app", "db"):
        make_template(name)
    return make_blueprint(
        "three-tier", ["net", "app", "db"],
        wiring=[("net", "res_id", "app", "upstream_id"), ("net", "res_id", "db", "upstream_id")],
        defaults={"net": {"name": "net-1"}, "app": {"name": "app-1"}, "db": {"name": "db-1"}},
    )


def drain(limit: int = 200) -> int:
    """Run, in this thread, every runnable process until none is left; how many runs."""
    count = 0
    while count < limit:
        pending = Process.objects.filter(status__in=RUNNABLE_STATUSES, lease_owner="").order_by(
            "started_at"
        ).first()
        if pending is None:
            return count
        run_process(str(pending.pk))
        count += 1
    raise AssertionError("processes keep coming")


def steps_of(execution: Execution) -> dict[str, object]:
    return {step.template_snapshot["name"]: step for step in execution.steps.all()}
