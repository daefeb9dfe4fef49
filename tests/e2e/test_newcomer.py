"""What a new user trips over, in a browser (issue 7, items 20-22)."""

from __future__ import annotations

import os
import re

import pytest

from orchestrator.models import Process
from orchestrator.runner import run_process
from tests.e2e.test_browser import log_in
from tests.factories import user_with_role
from tests.helpers import start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def keep(page, tmp_path, name: str) -> None:
    """KEEP_SCREENSHOTS=1 keeps a picture of the page to look at."""
    if os.environ.get("KEEP_SCREENSHOTS"):
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print("screenshot:", path)


def test_the_step_table_shows_only_the_nested_keys_a_step_changed(
    page, live_server, synced, tmp_path
):
    operator = user_with_role("operator")
    process = start("wf_nested", user=operator)
    run_process(str(process.pk))
    log_in(page, live_server.url, operator)
    page.goto(f"{live_server.url}/processes/{process.pk}/")
    row = page.locator("table.steps tr", has_text="Upgrade port")
    text = row.inner_text()
    assert "config.ports[1].speed" in text and '"10G"' in text and '"100G"' in text
    assert "config.mtu" in text and "config.legacy" in text and "removed" in text
    assert "ams-edge-01" not in text  # the unchanged rest of the object is not repeated
    assert "ams-edge-01" in page.locator("table.steps tr", has_text="Build config").inner_text()
    keep(page, tmp_path, "nested-diff")


def test_start_on_a_create_workflow_asks_for_the_product_first(
    page, live_server, box_product, enqueued, tmp_path
):
    operator = user_with_role("operator")
    log_in(page, live_server.url, operator)
    page.click("nav.mainnav >> text=Workflows")
    page.click("a[href='/workflows/create_box/start/']")
    assert page.locator(".errorbox").count() == 0  # no red error: a question
    keep(page, tmp_path, "choose-product")
    page.select_option("select[name=product]", str(box_product.pk))
    page.click("form.start-choice button[type=submit]")
    page.wait_for_url(re.compile(rf"\?product={box_product.pk}$"))
    assert "Creates a subscription of the product Box" in page.locator("section.card").inner_text()
    page.fill("input[name=customer_id]", "acme")
    page.fill("input[name=name]", "from-the-list")
    page.fill("input[name=size]", "4")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    process = Process.objects.get(workflow__name="create_box")
    assert process.state["product"] == box_product.pk and enqueued == [str(process.pk)]


def test_the_schedules_page_says_when_each_ran_how_it_ended_and_runs_next(
    page, live_server, synced, tmp_path
):
    import datetime

    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from orchestrator.schedules import SWEEP_TASK_NAME
    from tests.unit.test_schedules import worker_ran

    PeriodicTask.objects.filter(name=SWEEP_TASK_NAME).update(
        last_run_at=timezone.now() - datetime.timedelta(seconds=20), total_run_count=120
    )
    worker_ran(SWEEP_TASK_NAME, {"requeued": 0})
    process = start("task_clean_up_tasks")
    run_process(str(process.pk))
    PeriodicTask.objects.filter(name="workflow:task_clean_up_tasks").update(
        last_run_at=timezone.now() - datetime.timedelta(hours=3), total_run_count=4
    )
    worker_ran("workflow:task_clean_up_tasks", str(process.pk))
    log_in(page, live_server.url, user_with_role("viewer"))
    page.click("nav.mainnav >> text=Schedules")
    sweep = page.locator("tr", has_text=SWEEP_TASK_NAME).inner_text()
    assert "Every 30 seconds" in sweep and "120 runs" in sweep and "requeued: 0" in sweep
    assert "never" not in sweep.lower() and "in " in sweep
    cleanup = page.locator("tr", has_text="workflow:task_clean_up_tasks")
    assert "4 runs" in cleanup.inner_text() and "completed" in cleanup.inner_text()
    keep(page, tmp_path, "schedules")
    cleanup.locator(f"a[href='/processes/{process.pk}/']").click()
    page.wait_for_url(re.compile(rf"/processes/{process.pk}/$"))
