"""The PostgreSQL backend (orchestrator.postgresql) under server-side binding: a statement
carries at most 65,535 parameters, and deletes and bulk writes are cut into batches under
that limit instead of failing once a cascade reaches more rows."""

from __future__ import annotations

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orchestrator import services
from orchestrator.models import Process, ProcessStatus, ProcessStep, Workflow

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend"),
]


def deletes_from(model, queries: CaptureQueriesContext) -> int:
    """How many DELETE statements on `model`'s table were captured."""
    table = connection.ops.quote_name(model._meta.db_table)
    return sum(query["sql"].split()[:3] == ["DELETE", "FROM", table]
               for query in queries.captured_queries)


def test_the_backend_declares_the_server_side_parameter_limit():
    assert connection.features.uses_server_side_binding
    assert connection.features.max_query_params == 65535
    assert connection.ops.bulk_batch_size(["process"], range(200_000)) == 65535
    assert connection.ops.bulk_batch_size(["a", "b", "c"], range(200_000)) == 21845
    assert connection.ops.bulk_batch_size(["a"], range(10)) == 65535


def test_a_statement_a_session_runs_often_is_prepared():
    """psycopg prepares a statement once a session has run it PREPARE_THRESHOLD times
    (Django turns that off unless told): PostgreSQL then parses and plans it once per
    session, not at every step."""
    from orchestrator.config import PREPARE_THRESHOLD

    with connection.cursor() as cursor:
        for _ in range(PREPARE_THRESHOLD + 1):
            cursor.execute("SELECT %s::int AS prepared_marker", [1])
        cursor.execute("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
                       ["%prepared_marker%"])
        assert cursor.fetchone()[0] == 1


def test_cleaning_up_more_task_runs_than_the_limit_deletes_them_in_batches(monkeypatch, synced):
    """70,000 runs take a minute to make and delete; the same batching shows with the limit
    lowered to 2 parameters: 5 runs' steps go in 3 statements, and every run is gone."""
    monkeypatch.setitem(connection.features.__dict__, "max_query_params", 2)
    finished = timezone.now() - datetime.timedelta(days=400)
    workflow = Workflow.objects.first()
    for _ in range(5):
        run = Process.objects.create(workflow=workflow, is_task=True,
                                     status=ProcessStatus.COMPLETED, finished_at=finished)
        ProcessStep.objects.create(process=run, name="s", status="success",
                                   started_at=finished, completed_at=finished)
    with CaptureQueriesContext(connection) as queries:
        assert services.clean_up_task_runs(older_than_days=30) == 10  # 5 runs, 5 steps
    assert deletes_from(ProcessStep, queries) == 3
    assert not Process.objects.filter(is_task=True).exists()


def test_the_clean_up_deletes_old_task_runs_a_batch_at_a_time(monkeypatch, synced):
    """A batch of runs per delete (5,000; 2 here): its cascade's SET NULL updates, which
    Django sends as one statement, stay under the limit too (70,000 runs failed at once)."""
    monkeypatch.setattr(services, "DELETE_BATCH", 2)
    finished = timezone.now() - datetime.timedelta(days=400)
    workflow = Workflow.objects.first()
    runs = [Process.objects.create(workflow=workflow, is_task=True,
                                   status=ProcessStatus.COMPLETED, finished_at=finished)
            for _ in range(5)]
    recent = Process.objects.create(workflow=workflow, is_task=True,
                                    status=ProcessStatus.COMPLETED, finished_at=timezone.now())
    with CaptureQueriesContext(connection) as queries:
        assert services.clean_up_task_runs(older_than_days=30) == 5
    assert deletes_from(Process, queries) == 3
    assert list(Process.objects.filter(is_task=True)) == [recent]
    assert not Process.objects.filter(pk__in=[run.pk for run in runs]).exists()
