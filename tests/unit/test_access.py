"""Access rules of issue 7: the creator may view their run, schedules need their permission,
a hidden workflow is an unknown one, and no message names what the user may not see."""

from __future__ import annotations

import pytest
from guardian.shortcuts import assign_perm

from orchestrator.models import Process, Workflow
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def granted(synced):
    """No role: may view and start wf_counted through object grants only."""
    user = user_with_role(None)
    workflow = Workflow.objects.get(name="wf_counted")
    assign_perm("orchestrator.view_workflow", user, workflow)
    assign_perm("orchestrator.start_workflow", user, workflow)
    return user


# --- 3. the user who starts a process may view it ----------------------------------------


def test_creator_with_object_grants_only_views_the_run_started_through_the_api(granted, api):
    client = api(granted)
    started = client.post("/api/processes/", {"workflow": "wf_counted", "input": [{"steps": 1}]},
                          format="json")
    assert started.status_code == 201, started.content
    process_id = started.json()["id"]
    assert client.get(f"/api/processes/{process_id}/").status_code == 200
    assert [row["id"] for row in client.get("/api/processes/").json()["results"]] == [process_id]


def test_creator_lands_on_the_process_page_after_a_browser_start(granted, client):
    client.force_login(granted)
    response = client.post("/workflows/wf_counted/start/", {"steps": 1}, follow=True)
    process = Process.objects.get()
    assert response.redirect_chain[-1][0] == f"/processes/{process.pk}/"
    assert response.status_code == 200 and "wf_counted" in response.content.decode()


def test_only_the_creator_gains_the_view(granted, synced, api):
    from orchestrator import services

    process = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}],
                                     user=granted)
    other = user_with_role(None)
    assert api(other).get(f"/api/processes/{process.pk}/").status_code == 404
    system_run = services.start_process(workflow_name="wf_counted", input_pages=[{"steps": 1}])
    assert api(granted).get(f"/api/processes/{system_run.pk}/").status_code == 404
