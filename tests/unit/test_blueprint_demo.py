"""The demo blueprint ("Production Environment") and secrets at rest: run in-process with
the pauses shortened; a dump of the whole database holds secrets only as ciphertext."""

from __future__ import annotations

import io
import logging

import pytest
from django.core.management import call_command

from blueprints import demo, demo_workflows, selectors, services
from blueprints.models import Blueprint, Execution, Secret, Template
from orchestrator.crypto import decrypt_json
from tests.blueprint_helpers import drain, steps_of

pytestmark = pytest.mark.django_db
PASSWORD = "Sup3r-S3cret-Demo-Pw"
CREDENTIAL = "AKIA-demo-credential-value"


@pytest.fixture
def demo_loaded(synced, monkeypatch):
    monkeypatch.setattr(demo_workflows, "PAUSES", dict.fromkeys(demo_workflows.PAUSES, 0))
    demo.load(io.StringIO())
    return Blueprint.objects.get(name=demo.BLUEPRINT)


def test_the_demo_blueprint_plans_vpc_then_eks_and_rds(demo_loaded):
    plan = selectors.blueprint_plan(demo_loaded)
    assert plan.level_names == [["VPC"], ["EKS Cluster", "RDS Database"]]
    eks = plan.steps[1]
    assert eks.variables["subnet_ids"]["wired_from"] == "VPC.private_subnet_ids"
    assert not plan.problems
    demo.load(io.StringIO())  # idempotent
    assert Template.objects.count() == 3 and Blueprint.objects.count() == 1


def test_the_demo_provisions_subscriptions_of_the_demo_products_in_order(demo_loaded):
    execution = services.create_execution(blueprint=demo_loaded, data={
        "variable_overrides": {"EKS Cluster": {"node_count": 5}},
        "source_code_versions": {"VPC": "v1.5.0"},
    })
    services.execute_execution(execution=execution)
    drain()
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    steps = steps_of(execution)
    vpc, eks, rds = steps["VPC"], steps["EKS Cluster"], steps["RDS Database"]
    assert vpc.outputs["vpc_id"].startswith("vpc-")
    assert eks.process.state["subnet_ids"] == vpc.outputs["private_subnet_ids"]
    assert eks.process.state["vpc_id"] == rds.process.state["vpc_id"] == vpc.outputs["vpc_id"]
    assert eks.process.state["node_count"] == 5
    assert eks.outputs["cluster_endpoint"].startswith("https://")
    assert rds.outputs["db_port"] == 5432
    assert vpc.process.state["source_code_version"] == "v1.5.0"
    assert {s.resource.product.name for s in steps.values()} == {"VPC", "EKS Cluster",
                                                                  "RDS Database"}
    assert set(eks.resource.depends_on.all()) == {vpc.resource}
    assert all(s.resource.status == "active" for s in steps.values())


def test_tear_down_terminates_in_reverse_order_as_one_run_and_refuses_while_in_use(
    demo_loaded, admin_user, operator,
):
    execution = services.create_execution(blueprint=demo_loaded)
    services.execute_execution(execution=execution)
    drain()
    execution = Execution.objects.get(pk=execution.pk)
    from django.core.exceptions import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.teardown_execution(execution=execution, user=operator)
    vpc = steps_of(execution)["VPC"].resource
    from subscriptions.models import Subscription

    foreign = Subscription.objects.create(product=vpc.product, customer_id="x",
                                          description="someone else's", status="active")
    foreign.depends_on.add(vpc)
    from orchestrator.exceptions import Conflict

    with pytest.raises(Conflict, match="is in use by someone else's"):
        services.teardown_execution(execution=execution, user=admin_user)
    foreign.depends_on.clear()
    services.teardown_execution(execution=execution, user=admin_user)
    drain()
    execution.refresh_from_db()
    assert execution.teardown_status == "done", execution.teardown_error
    steps = steps_of(execution)
    ended = {name: step.teardown_process.finished_at for name, step in steps.items()}
    assert ended["VPC"] > max(ended["EKS Cluster"], ended["RDS Database"])
    assert all(step.resource.status == "terminated" for step in steps.values())
    assert all(step.teardown_process.parent_id == execution.teardown_run_id
               for step in steps.values())
    with pytest.raises(Conflict, match="done already"):
        services.teardown_execution(execution=execution, user=admin_user)


def test_a_secret_is_nowhere_but_in_ciphertext(demo_loaded, admin_user, api, client, caplog):
    """Secret override, Secret and integration credentials: after a whole run, no API answer,
    page, process state, log line or database dump holds them in clear."""
    caplog.set_level(logging.DEBUG)
    secret = services.save_secret(data={"name": "db_admin", "value": PASSWORD})
    integration = services.save_integration(data={
        "name": "aws", "kind": "aws", "credentials": {"secret_key": CREDENTIAL}})
    execution = services.create_execution(blueprint=demo_loaded, data={
        "variable_overrides": {"RDS Database": {"master_password": PASSWORD}},
        "secrets": [secret.pk], "integrations": [integration.pk]})
    services.execute_execution(execution=execution)
    drain()
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    rds = steps_of(execution)["RDS Database"]
    assert rds.process.state["password_source"] == "given"  # it did reach the step
    assert rds.process.state["integrations"][0]["name"] == "aws"
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    text = dump.getvalue()
    assert PASSWORD not in text and CREDENTIAL not in text
    assert Secret.objects.get(name="db_admin").value in text  # there, as ciphertext
    assert decrypt_json(Secret.objects.get(name="db_admin").value) == {"value": PASSWORD}
    client.force_login(admin_user)
    shown = "".join(
        api(admin_user).get(path).content.decode()
        for path in (f"/api/executions/{execution.pk}/", f"/api/processes/{rds.process_id}/",
                     "/api/secrets/", "/api/integrations/", f"/api/processes/{execution.run_id}/")
    ) + "".join(
        client.get(path).content.decode()
        for path in (f"/blueprints/executions/{execution.pk}/", f"/processes/{rds.process_id}/")
    )
    assert PASSWORD not in shown and CREDENTIAL not in shown
    assert PASSWORD not in caplog.text and CREDENTIAL not in caplog.text
