"""orchestrator.rows: the hot paths' written SQL stores and reads what the ORM would."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from orchestrator import rows, services
from orchestrator.models import AuditEvent, Process, Workflow

pytestmark = pytest.mark.django_db


def test_insert_stores_every_field_of_each_object_in_one_statement(synced):
    workflow = Workflow.objects.get(name="wf_counted")
    first = Process(workflow=workflow, state={"n": 1, "nested": {"a": [1, 2]}},
                    planned_steps=["a", "b"], run_name="first", call_key="k")
    second = Process(workflow=workflow, parent=first, status="queued", run_name="second")
    with CaptureQueriesContext(connection) as queries:
        rows.insert([first, second])
    assert len(queries) == 1
    assert not first._state.adding and first._state.db == "default"
    stored = {process.run_name: process for process in Process.objects.all()}
    assert stored["first"].state == {"n": 1, "nested": {"a": [1, 2]}}
    assert stored["first"].planned_steps == ["a", "b"]
    assert stored["first"].call_key == "k" and stored["first"].workflow_id == workflow.pk
    assert stored["second"].parent_id == first.pk and stored["second"].status == "queued"
    assert not stored["second"].waiting_on_children and stored["second"].position == 0
    for process in (first, second):  # auto_now_add and auto_now set, as the ORM sets them
        assert process.started_at is not None and process.last_modified_at is not None
        assert stored[process.run_name].started_at == process.started_at


def test_insert_refuses_a_model_whose_key_the_database_assigns(synced):
    with pytest.raises(TypeError, match="bulk_create"):
        rows.insert([AuditEvent(action="x", summary="x")])


def test_a_start_stores_its_process_with_the_written_insert(synced):
    with CaptureQueriesContext(connection) as queries:
        process = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 2}])
    inserts = [query["sql"] for query in queries
               if query["sql"].startswith('INSERT INTO "orchestrator_process"')]
    assert len(inserts) == 1 and "RETURNING" not in inserts[0]  # not the ORM's bulk_create
    assert Process.objects.get(pk=process.pk).state["steps"] == 2
