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
