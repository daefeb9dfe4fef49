"""The workflow catalogue API: GET /api/workflows/ and /api/workflows/{name}/."""

from __future__ import annotations

import pytest
from guardian.shortcuts import assign_perm

from orchestrator.models import Workflow

pytestmark = pytest.mark.django_db


def test_the_catalogue_lists_registered_workflows_with_their_attributes(synced, viewer, api):
    response = api(viewer).get("/api/workflows/?limit=500")  # the test catalogue is big
    assert response.status_code == 200
    body = response.json()
    assert {"count", "next", "previous", "results"} <= set(body)
    rows = {row["name"]: row for row in body["results"]}
    assert body["count"] == Workflow.objects.count()
    row = rows["wf_input"]
    assert set(row) >= {"name", "description", "type", "target", "is_task", "tags", "cron"}
    assert row["description"] == "Waits for input"
    assert row["is_task"] is True and row["type"] == "core" and row["target"] == "system"
    assert rows["wf_audited"]["is_task"] is False
    assert "form" not in row


def test_the_catalogue_filters_by_is_task(synced, viewer, api):
    names = {
        r["name"]
        for r in api(viewer).get("/api/workflows/?is_task=false&limit=500").json()["results"]
    }
    assert "wf_audited" in names and "wf_input" not in names


def test_workflow_detail_has_the_json_schema_of_its_first_page(synced, viewer, api):
    response = api(viewer).get("/api/workflows/wf_secret/")
    assert response.status_code == 200
    form = response.json()["form"]
    assert form["type"] == "object"
    assert set(form["properties"]) == {"username", "password"}
    assert form["properties"]["password"]["writeOnly"] is True
    assert form["required"] == ["username", "password"]


def test_workflow_without_input_has_no_form(synced, viewer, api):
    response = api(viewer).get("/api/workflows/wf_audited/")
    assert response.status_code == 200
    assert response.json()["form"] is None


def test_generator_forms_give_their_first_page(synced, viewer, api, monkeypatch):
    from django import forms

    from tests import workflows

    class First(forms.Form):
        size = forms.IntegerField(min_value=1)

    class Second(forms.Form):
        colour = forms.CharField()

    def pages():
        answers = yield First
        yield Second
        return {"answered": answers}

    monkeypatch.setattr(workflows.wf_audited, "initial_input_form", pages)
    form = api(viewer).get("/api/workflows/wf_audited/").json()["form"]
    assert form["title"] == "First"
    assert form["properties"]["size"]["minimum"] == 1


def test_unknown_workflow_is_a_404_naming_it(synced, viewer, api):
    response = api(viewer).get("/api/workflows/no_such_thing/")
    assert response.status_code == 404
    assert response.json() == {"detail": "Unknown workflow 'no_such_thing'"}


def test_a_user_without_view_permission_sees_no_workflows(synced, nobody, api):
    assert api(nobody).get("/api/workflows/").json()["count"] == 0
    assert api(nobody).get("/api/workflows/wf_input/").status_code == 404


def test_a_per_object_grant_shows_exactly_that_workflow(synced, nobody, api):
    assign_perm("orchestrator.view_workflow", nobody, Workflow.objects.get(name="wf_input"))
    body = api(nobody).get("/api/workflows/").json()
    assert [row["name"] for row in body["results"]] == ["wf_input"]
    assert api(nobody).get("/api/workflows/wf_input/").status_code == 200


@pytest.mark.parametrize("path", ["/api/workflows/", "/api/workflows/wf_input/"])
def test_anonymous_is_refused(synced, api, path):
    assert api().get(path).status_code in (401, 403)
