"""A browser on the catalogue's pages: filter the workflows, watch a run wait for a
concurrency slot and start when it frees, see why a `cancel_new` run was cancelled."""

from __future__ import annotations

import os
import re

import pytest

from orchestrator.models import Process
from orchestrator.runner import claim, run_process
from tests.e2e.test_browser import log_in
from tests.factories import user_with_role
from tests.helpers import start

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SHOTS = os.environ.get("E2E_SCREENSHOTS", "/tmp")


def shot(page, name: str) -> None:
    page.screenshot(path=os.path.join(SHOTS, f"catalogue-{name}.png"), full_page=True)


def test_the_catalogue_filters_by_tag_type_and_target(page, live_server, synced):
    log_in(page, live_server.url, user_with_role("viewer"))
    page.click("nav.mainnav >> text=Workflows")
    page.fill("input[name=tag]", "limited")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r"/workflows/\?.*tag=limited"))
    names = page.locator("table.table tbody tr td:first-child strong").all_inner_texts()
    assert sorted(names) == ["wf_one_cancel_new", "wf_one_enqueue", "wf_two_enqueue"]
    assert "more are cancelled" in page.locator("table.table").inner_text()
    shot(page, "filtered")

    page.click("a.btn-ghost >> text=Clear")
    page.select_option("select[name=type]", "user")
    page.select_option("select[name=target]", "validate")
    page.click("form.filters button[type=submit]")
    table = page.locator("table.table").inner_text()
    assert "wf_widget_check" in table and "for Widget" in table
    assert "wf_one_enqueue" not in table and "core" not in table
    page.click("table.table a.tag >> text=nightly")  # a tag is a link to its filter
    assert page.locator("input[name=tag]").input_value() == "nightly"


def test_a_run_waits_for_a_concurrency_slot_live_and_starts_when_it_frees(
    page, live_server, synced, enqueued
):
    first = start("wf_one_enqueue", {"hold": 0})
    assert claim(str(first.pk), "a-worker-elsewhere")  # the first run holds the only slot
    log_in(page, live_server.url, user_with_role("operator"))
    page.goto(live_server.url + "/workflows/wf_one_enqueue/start/")
    page.fill("input[name=hold]", "0")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    second = Process.objects.exclude(pk=first.pk).get()

    page.evaluate("window.__notReloaded = true")
    assert run_process(str(second.pk)) is False  # what a worker does: no slot, it waits
    page.wait_for_selector(".status-card .badge-queued", timeout=10_000)
    status = page.locator(".status-card").inner_text()
    assert "Waiting for a concurrency slot" in status and "it is next" in status
    shot(page, "waiting")
    page.goto(live_server.url + "/processes/?workflow=wf_one_enqueue")
    assert "waiting for a slot" in page.locator("table.table").inner_text()
    page.go_back()
    page.wait_for_selector(".status-card .badge-queued")
    page.evaluate("window.__notReloaded = true")

    Process.objects.filter(pk=first.pk).update(status="completed", lease_owner="")
    run_process(str(second.pk))
    page.wait_for_selector(".status-card .badge-completed", timeout=10_000)
    assert page.evaluate("window.__notReloaded") is True


def test_a_cancel_new_start_lands_on_the_cancelled_run_saying_why(page, live_server, synced):
    first = start("wf_one_cancel_new", {"hold": 0})
    assert claim(str(first.pk), "a-worker-elsewhere")
    log_in(page, live_server.url, user_with_role("operator"))
    page.goto(live_server.url + "/workflows/wf_one_cancel_new/start/")
    page.fill("input[name=hold]", "0")
    page.click("form.stacked button[type=submit]")
    page.wait_for_url(re.compile(r"/processes/[0-9a-f-]{36}/$"))
    cancelled = Process.objects.get(status="cancelled")
    assert page.url.endswith(f"/processes/{cancelled.pk}/")
    assert "cancelled at once" in page.locator(".messages").inner_text()
    assert "runs at most 1 at a time" in page.locator(".status-card").inner_text()
    assert page.locator(".status-card .badge").inner_text() == "cancelled"
    assert "cancel_new" in page.locator(".status-card").inner_text()
    shot(page, "cancelled")
