"""GET /metrics: who may read it, and what it reports (from the database and the broker)."""

from __future__ import annotations

import datetime
import uuid

import pytest
from django.test import Client
from django.utils import timezone
from kombu import Connection, Exchange, Queue
from prometheus_client.parser import text_string_to_metric_families

from orchestrator import services
from orchestrator.models import Process, ProcessStep
from orchestrator.tokens import issue_token
from tests.helpers import closed_port, start

pytestmark = pytest.mark.django_db

TOKEN = "scraper-token-for-the-tests-0123456789"


def scrape(client: Client | None = None, **headers) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, keyed by (name, sorted labels)."""
    response = (client or Client()).get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def test_who_may_read(settings, viewer, admin_user):
    settings.ORCHESTRATOR_METRICS_TOKEN = TOKEN
    anonymous = Client().get("/metrics")
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert Client().get("/metrics", **bearer("wrong")).status_code == 401
    scrape(**bearer(TOKEN))
    client = Client()
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 403  # every workflow's runs: admins only
    client.force_login(admin_user)
    scrape(client)


def test_an_api_token_of_a_user_who_may_read(settings, viewer, admin_user):
    """`Authorization: Token <key>`, as the REST API takes it: the token's user needs
    orchestrator.view_metrics like a logged-in one; a wrong, empty, oversized or hostile
    key is a 401, never a 500."""
    settings.ORCHESTRATOR_METRICS_TOKEN = ""  # the bearer route closed: tokens still work
    scrape(HTTP_AUTHORIZATION=f"Token {issue_token(admin_user)}")
    refused = Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {issue_token(viewer)}")
    assert refused.status_code == 403
    assert "view_metrics" in refused.json()["detail"]
    for key in ("", "wrong", "x" * 10_000, "'; DROP TABLE orchestrator_apitoken; --",
                "\u00e9\u00e8\u2603"):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {key}")
        assert response.status_code == 401, key
        assert response.json()["detail"] == "Invalid token."
        assert response["WWW-Authenticate"].startswith("Bearer")
    admin_user.is_active = False
    admin_user.save()
    inactive = Client().get("/metrics", HTTP_AUTHORIZATION=f"Token {issue_token(admin_user)}")
    assert inactive.status_code == 401


def test_no_token_configured_refuses_every_bearer(settings):
    settings.ORCHESTRATOR_METRICS_TOKEN = ""
    assert Client().get("/metrics", **bearer("")).status_code == 401
    assert Client().get("/metrics", **bearer("anything")).status_code == 401


def step_row(process: Process, seconds: float, finished_ago: float = 1) -> None:
    completed = timezone.now() - datetime.timedelta(seconds=finished_ago)
    ProcessStep.objects.create(
        process=process, name="s", status="success",
        started_at=completed - datetime.timedelta(seconds=seconds), completed_at=completed,
    )


def test_processes_steps_slots_and_workers(settings, synced):
    settings.ORCHESTRATOR_METRICS_TOKEN = TOKEN
    settings.ORCHESTRATOR_METRICS_WINDOW_SECONDS = 300
    runs = [start("wf_counted", {"steps": 1}) for _ in range(4)]
    Process.objects.filter(pk=runs[0].pk).update(status="failed")
    Process.objects.filter(pk=runs[1].pk).update(status="queued", slot_requested_at=timezone.now())
    Process.objects.filter(pk=runs[2].pk).update(status="queued")  # paused engine, not a slot
    step_row(runs[3], 0.003)
    step_row(runs[3], 0.2)
    step_row(runs[3], 7)
    step_row(runs[3], 0.001, finished_ago=600)  # before the window
    services.record_worker_heartbeat(
        name="core@a", hostname="a", pid=1, queues=["core", "user"], pool="threads",
        concurrency=2, started_at=timezone.now(),
    )
    samples = scrape(**bearer(TOKEN))
    assert samples[("orchestrator_processes", (("status", "failed"),))] == 1
    assert samples[("orchestrator_processes", (("status", "queued"),))] == 2
    assert samples[("orchestrator_processes", (("status", "created"),))] == 1
    assert samples[("orchestrator_processes", (("status", "aborted"),))] == 0
    assert samples[("orchestrator_runs_waiting_for_slot", ())] == 1
    assert samples[("orchestrator_engine_paused", ())] == 0

    def bucket(bound: str) -> float:
        return samples[("orchestrator_step_duration_seconds_bucket", (("le", bound),))]

    assert (bucket("0.005"), bucket("0.25"), bucket("5"), bucket("10"), bucket("+Inf")) == (
        1, 2, 2, 3, 3
    )
    assert samples[("orchestrator_step_duration_seconds_gcount", ())] == 3
    assert samples[("orchestrator_step_duration_seconds_gsum", ())] == pytest.approx(7.203)
    assert samples[("orchestrator_workers", (("status", "alive"),))] == 1
    assert samples[("orchestrator_workers_alive", (("queue", "user"),))] == 1
    assert samples[("orchestrator_workers_alive", (("queue", "internal"),))] == 0


def broker(settings) -> Connection:
    return Connection(settings.CELERY_BROKER_URL,
                      transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS)


def test_queue_depth_from_the_broker(settings):
    """Messages published to a queue and not consumed are its depth; a queue never declared
    is 0."""
    settings.ORCHESTRATOR_METRICS_TOKEN = TOKEN
    name, empty = f"metrics-{uuid.uuid4().hex[:8]}", f"metrics-{uuid.uuid4().hex[:8]}"
    settings.CELERY_TASK_QUEUES = [Queue(name, routing_key=name), Queue(empty, routing_key=empty)]
    queue = Queue(name, Exchange(name), routing_key=name)
    with broker(settings) as connection:
        producer = connection.Producer()
        for number in range(3):
            producer.publish({"n": number}, exchange=queue.exchange, routing_key=name,
                             declare=[queue], serializer="json")
    try:
        samples = scrape(**bearer(TOKEN))
        assert samples[("orchestrator_broker_up", ())] == 1
        assert samples[("orchestrator_queue_messages", (("queue", name),))] == 3
        assert samples[("orchestrator_queue_messages", (("queue", empty),))] == 0
    finally:
        with broker(settings) as connection:
            queue(connection.default_channel).delete()


def test_broker_down_is_a_metric_not_an_error(settings):
    settings.ORCHESTRATOR_METRICS_TOKEN = TOKEN
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    samples = scrape(**bearer(TOKEN))
    assert samples[("orchestrator_broker_up", ())] == 0
    assert not any(name == "orchestrator_queue_messages" for name, _ in samples)
    assert ("orchestrator_processes", (("status", "running"),)) in samples
