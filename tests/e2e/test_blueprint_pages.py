"""A browser drives the blueprint pages against a live server and a real Celery worker: open
the demo "Production Environment", see its graph, execute it with an override, watch the
levels complete live, open a resource; and a viewer browses templates and executions."""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import pytest

from blueprints import demo, services
from blueprints.models import Blueprint, Execution, Template
from orchestrator.models import RUNNABLE_STATUSES, Process, ProcessStatus
from tests.conftest import wait_for
from tests.e2e.test_browser import log_in
from tests.e2e.test_newcomer import keep
from tests.factories import user_with_role

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs" / "blueprint.png"

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo_blueprint(synced) -> Blueprint:
    demo.load(io.StringIO())
    return Blueprint.objects.get(name=demo.BLUEPRINT)


def test_operator_executes_the_demo_blueprint_and_watches_its_levels_complete(
    page, live_server, demo_blueprint, celery_worker, tmp_path
):
    operator = user_with_role("operator")
    log_in(page, live_server.url, operator)
    page.click("nav.mainnav >> text=Blueprints")
    page.click("text=Production Environment")
    page.wait_for_url(re.compile(rf"/blueprints/{demo_blueprint.pk}/$"))

    graph = page.locator("svg.graph")
    assert graph.locator(".graph-node").count() == 3
    assert graph.locator(".graph-level").all_text_contents() == ["Level 0", "Level 1"]
    labels = graph.locator(".graph-label").all_text_contents()
    assert "private_subnet_ids → subnet_ids" in labels and labels.count("vpc_id → vpc_id") == 2
    assert "VPC · vpc_id" in page.locator("table.wiring").inner_text()
    if os.environ.get("UPDATE_SCREENSHOT") == "1":  # the picture in docs/blueprints.md
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    keep(page, tmp_path, "blueprint")

    eks = Template.objects.get(name="EKS Cluster")
    nodes = page.locator(f"input[name='var-{eks.pk}-node_count']")
    assert nodes.input_value() == "3"  # prefilled with the template's default
    nodes.fill("5")
    page.click("button[value=execute]")
    page.wait_for_url(re.compile(r"/blueprints/executions/[0-9a-f-]{36}/$"))
    execution = Execution.objects.get()
    assert "Executing" in page.locator(".messages").inner_text()
    page.evaluate("window.__notReloaded = true")

    # The fragment is polled: level 0 completes while level 1 runs, then level 1 completes.
    page.wait_for_selector("text=1 of 3 steps done", timeout=30_000)
    assert page.locator("svg.graph .node-done").count() == 1
    keep(page, tmp_path, "execution-running")
    page.wait_for_selector("text=3 of 3 steps done", timeout=60_000)
    page.wait_for_selector("[data-live-stop]", state="attached")
    assert page.evaluate("window.__notReloaded") is True
    assert page.locator(".status-card .badge").first.inner_text() == "done"
    assert page.locator("svg.graph .node-done").count() == 3
    keep(page, tmp_path, "execution-done")

    steps = {step.template_snapshot["name"]: step for step in execution.steps.all()}
    card = page.locator(f"#step-{steps['EKS Cluster'].pk}")
    row = card.locator("tr", has_text="node_count")
    assert "5" in row.inner_text() and "override" in row.inner_text()
    assert "wired" in card.locator("tr", has_text="subnet_ids").inner_text()
    assert page.locator("text=Tear down").count() == 0  # an operator: no admin buttons

    card.locator("a.resource-link").click()
    page.wait_for_url(re.compile(rf"/subscriptions/{steps['EKS Cluster'].resource_id}/$"))
    assert "5 nodes" in page.locator("h1").inner_text()
    keep(page, tmp_path, "resource")
    # The execution's run ends after its last step does; waiting for it also keeps the worker
    # from writing its last rows while the test's rows are being deleted.
    wait_for(lambda: not Process.objects.filter(status__in=RUNNABLE_STATUSES).exists())
    assert Process.objects.get(pk=execution.run_id).status == ProcessStatus.COMPLETED


def test_viewer_browses_templates_and_executions_without_any_button(
    page, live_server, demo_blueprint, tmp_path
):
    services.create_execution(blueprint=demo_blueprint)
    viewer = user_with_role("viewer")
    log_in(page, live_server.url, viewer)
    page.goto(live_server.url + f"/blueprints/{demo_blueprint.pk}/")
    assert page.locator("form.execute-form").count() == 0
    assert "executing it needs the operator role" in page.locator(".notice").inner_text()

    page.click("nav.subnav >> text=Templates")
    assert page.locator("table.table tbody tr").count() == 3
    page.click("text=RDS Database")
    assert "master_password" in page.locator("section.card", has_text="Variables").inner_text()
    assert "Production Environment" in page.locator("section.card",
                                                    has_text="Used by").inner_text()
    keep(page, tmp_path, "template")

    page.click("nav.subnav >> text=Executions")
    page.select_option("select[name=status]", "pending")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"status=pending"))
    page.locator("table.table tbody tr a.mono").first.click()
    page.wait_for_url(re.compile(r"/blueprints/executions/[0-9a-f-]{36}/$"))
    assert page.locator(".badge-pending").count() >= 1
    for button in ("Execute", "Save overrides", "Tear down", "Delete"):
        assert page.locator(f"button:has-text('{button}')").count() == 0
    keep(page, tmp_path, "execution-viewer")
