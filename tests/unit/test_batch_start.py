"""Starting many runs in one transaction: `services.start_processes` and
`POST /api/processes/batch/` (issue 10): the single start's rules, item by item."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import get_perms

from orchestrator import services
from orchestrator.models import (
    AuditEvent,
    IdempotencyKey,
    Process,
    ProcessStatus,
    ProcessTag,
)
from orchestrator.tasks import run_process_task
from subscriptions.models import Subscription

pytestmark = pytest.mark.django_db

COUNTED = {"workflow": "wf_counted", "input": [{"steps": 2}]}


def post_batch(client, runs, **headers):
    return client.post("/api/processes/batch/", {"runs": runs}, format="json", **headers)


@pytest.fixture
def sent(monkeypatch) -> list[tuple[str, str]]:
    """(process id, queue) of every run task sent to the broker."""
    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(run_process_task, "apply_async",
                        lambda args, queue, **options: calls.append((args[0], queue)))
    return calls


def test_a_batch_starts_every_run_with_the_single_start_s_records(
    operator, api, sent, django_capture_on_commit_callbacks
):
    runs = [{**COUNTED, "tags": ["branch:main"]}, {"workflow": "wf_audited"}, COUNTED]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_batch(api(operator), runs)
    assert response.status_code == 201, response.content
    body = response.json()["runs"]
    assert [run["workflow"] for run in body] == ["wf_counted", "wf_audited", "wf_counted"]
    assert {run["status"] for run in body} == {"created"}
    assert [run["replayed"] for run in body] == [False] * 3
    assert body[0]["tags"] == ["branch:main"] and body[1]["tags"] == []
    ids = [run["id"] for run in body]
    processes = {str(pk): process for pk, process in Process.objects.in_bulk(ids).items()}
    assert processes[ids[0]].state["steps"] == 2 and processes[ids[0]].created_by == operator
    assert all(get_perms(operator, process) == ["view_process"]
               for process in processes.values())
    assert AuditEvent.objects.filter(action="process.start", object_id__in=ids).count() == 3
    assert ProcessTag.objects.filter(process_id=ids[0], name="branch:main").exists()
    assert len(callbacks) == 1  # one round of sends for the whole batch
    assert sorted(process_id for process_id, _ in sent) == sorted(ids)
    assert {queue for _, queue in sent} == {"core"}
    assert Process.objects.filter(pk__in=ids, enqueued_at__isnull=False).count() == 3


def test_a_batch_costs_the_same_statements_for_two_runs_or_twenty(operator, sent):
    def statements(count: int) -> int:
        runs = [services.BatchRun(services.StartRequest("wf_counted", [{"steps": 2}]))] * count
        with CaptureQueriesContext(connection) as queries:
            services.start_processes(runs=runs, user=operator)
        return len(queries.captured_queries)

    statements(1)  # warm-up: permission and content type caches
    assert statements(2) == statements(20)


def test_an_invalid_run_is_a_400_naming_it_and_its_field_and_nothing_starts(operator, api):
    runs = [COUNTED, {"workflow": "wf_counted", "input": [{"steps": "many"}]}, COUNTED,
            {"workflow": "wf_counted", "input": [{"steps": 0}]}]
    response = post_batch(api(operator), runs)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["detail"].startswith("2 of the 4 runs are invalid; runs[1]: ")
    assert set(body["runs"]) == {"1", "3"}
    assert "steps" in body["runs"]["1"] and "steps" in body["runs"]["3"]
    assert not Process.objects.exists()


def test_a_malformed_run_is_a_400_naming_its_index_and_field(operator, api):
    response = post_batch(api(operator), [COUNTED, {"input": []}])
    assert response.status_code == 400, response.content
    assert response.json()["runs"] == {"1": {"workflow": ["This field is required."]}}
    assert post_batch(api(operator), []).status_code == 400
    too_many = post_batch(api(operator), [COUNTED] * (services.MAX_BATCH_RUNS + 1))
    assert too_many.status_code == 400 and "runs" in too_many.json()
    assert not Process.objects.exists()


def test_an_unknown_or_forbidden_workflow_refuses_the_batch_naming_the_run(
    operator, viewer, api
):
    response = post_batch(api(operator), [COUNTED, {"workflow": "nope"}])
    assert response.status_code == 404
    assert response.json()["detail"] == "runs[1]: Unknown workflow 'nope'"
    forbidden = post_batch(api(viewer), [COUNTED])
    assert forbidden.status_code == 403
    assert forbidden.json()["detail"].startswith("runs[0]: ")
    assert "start_workflow" in forbidden.json()["detail"]
    assert not Process.objects.exists()


def test_a_veto_inside_the_transaction_refuses_the_whole_batch(operator, api, create_box):
    box = create_box("b1")
    modify = {"workflow": "modify_box", "subscription": str(box.pk), "input": [{"size": 8}]}
    response = post_batch(api(operator), [COUNTED, modify, modify])
    assert response.status_code == 409, response.content
    assert response.json()["detail"].startswith("runs[2]: ")
    assert not Process.objects.exclude(workflow__name="create_box").exists()
    assert Subscription.objects.get(pk=box.pk).insync  # the first modify's unsync rolled back


def test_a_full_cancel_new_limit_cancels_the_runs_beyond_it(operator, api, sent):
    hold = {"workflow": "wf_one_cancel_new", "input": [{"hold": 0}]}
    response = post_batch(api(operator), [hold, hold, COUNTED])
    assert response.status_code == 201, response.content
    first, second, other = response.json()["runs"]
    assert first["status"] == other["status"] == ProcessStatus.CREATED
    assert second["status"] == ProcessStatus.CANCELLED
    assert "at most 1 at a time" in second["failed_reason"]


def test_idempotency_keys_go_per_run(operator, api):
    client = api(operator)
    first = post_batch(client, [{**COUNTED, "idempotency_key": "a"}, COUNTED])
    again = post_batch(client, [{**COUNTED, "idempotency_key": "a"},
                                {**COUNTED, "idempotency_key": "b"}])
    assert first.status_code == again.status_code == 201, again.content
    assert [run["replayed"] for run in again.json()["runs"]] == [True, False]
    assert again.json()["runs"][0]["id"] == first.json()["runs"][0]["id"]
    assert Process.objects.count() == 3
    assert IdempotencyKey.objects.filter(process__isnull=False).count() == 2
    reused = post_batch(client, [{"workflow": "wf_audited", "idempotency_key": "a"}])
    assert reused.status_code == 422 and "runs[0]: " in reused.json()["detail"]
    malformed = post_batch(client, [{**COUNTED, "idempotency_key": "caf\u00e9"}])
    assert malformed.status_code == 400 and "idempotency_key" in malformed.json()["runs"]["0"]
    header = post_batch(client, [COUNTED], HTTP_IDEMPOTENCY_KEY="k")
    assert header.status_code == 400 and "idempotency_key" in header.json()
    assert Process.objects.count() == 3


def test_a_cancelled_run_keeps_no_key(operator, api):
    hold = {"workflow": "wf_one_cancel_new", "input": [{"hold": 0}]}
    response = post_batch(api(operator), [hold, {**hold, "idempotency_key": "k"}])
    assert response.json()["runs"][1]["status"] == ProcessStatus.CANCELLED
    assert not IdempotencyKey.objects.exists()


def test_one_idempotency_key_twice_in_a_batch_is_a_400_naming_the_second(operator, api):
    runs = [{**COUNTED, "idempotency_key": "a"}, COUNTED, {**COUNTED, "idempotency_key": "a"}]
    response = post_batch(api(operator), runs)
    assert response.status_code == 400, response.content
    assert response.json()["runs"] == {"2": {
        "idempotency_key": ["runs[0] has the same idempotency key"],
        "detail": "runs[0] has the same idempotency key",
    }}
    assert not Process.objects.exists() and not IdempotencyKey.objects.exists()
