"""A browser: a viewer opens Workers from the navigation and reads which workers are alive,
on which queues, and which are lost; a user without a role has no Workers link and a 403."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from orchestrator import services
from orchestrator.models import WorkerHeartbeat
from tests.e2e.test_browser import log_in
from tests.e2e.test_newcomer import keep
from tests.factories import user_with_role

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def report(name: str, queues: list[str], pid: int) -> None:
    services.record_worker_heartbeat(
        name=name, hostname="machine-b", pid=pid, queues=queues, pool="threads",
        concurrency=8, started_at=timezone.now() - datetime.timedelta(hours=2),
    )


def test_a_viewer_sees_live_and_lost_workers(page, live_server, synced, tmp_path):
    report("core@machine-b", ["core"], 4101)
    report("internal@machine-b", ["internal"], 4102)
    report("user@machine-c", ["user"], 4103)
    WorkerHeartbeat.objects.filter(name="user@machine-c").update(
        last_seen_at=timezone.now() - datetime.timedelta(minutes=5)
    )
    log_in(page, live_server.url, user_with_role("viewer"))
    page.click("nav.mainnav >> text=Workers")
    page.wait_for_url(re.compile(r"/workers/$"))
    assert page.locator("h1").inner_text() == "Workers"
    rows = page.locator("table.workers tbody tr")
    assert rows.count() == 3
    core = rows.filter(has_text="core@machine-b").inner_text()
    assert "alive" in core and "machine-b" in core and "pid 4101" in core and "threads × 8" in core
    lost = rows.filter(has_text="user@machine-c").inner_text()
    assert "lost" in lost and "5\xa0minutes ago" in lost
    # The user queue has no live worker left: the page says so.
    assert "No live worker on queue user" in page.locator(".message-warning").inner_text()
    keep(page, tmp_path, "workers")


def test_no_workers_link_without_a_role(page, live_server, synced):
    log_in(page, live_server.url, user_with_role(None))
    assert page.locator("nav.mainnav >> text=Workers").count() == 0
    assert page.goto(live_server.url + "/workers/").status == 403
