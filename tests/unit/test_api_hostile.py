"""Anonymous callers and hostile input: always a 4xx with the one error shape, never a 500."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from orchestrator import services
from orchestrator.models import EngineSettings, Process

pytestmark = pytest.mark.django_db

ANY_ID = "8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11"


@pytest.fixture
def process(operator):
    return services.start_process(
        workflow_name="wf_counted", input_pages=[{"steps": 1}], user=operator
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/workflows/"),
        ("get", "/api/workflows/wf_input/"),
        ("get", "/api/processes/"),
        ("post", "/api/processes/"),
        ("get", "/api/processes/{id}/"),
        ("delete", "/api/processes/{id}/"),
        ("post", "/api/processes/{id}/resume/"),
        ("post", "/api/processes/{id}/abort/"),
        ("get", "/api/engine/"),
        ("post", "/api/engine/"),
        ("get", "/api/schedules/"),
        ("get", "/api/schedules/1/"),
        ("get", "/api/schema/"),
    ],
)
def test_anonymous_is_refused_everywhere_but_the_callback(process, api, method, path):
    client = api()
    response = getattr(client, method)(
        path.format(id=process.pk), {"workflow": "wf_audited", "paused": True}, format="json"
    )
    assert response.status_code in (401, 403), (path, response.status_code)
    if "schema" not in path:
        assert "detail" in response.json()
    process.refresh_from_db()
    assert process.status == "created"
    assert Process.objects.count() == 1
    assert not EngineSettings.objects.filter(paused=True).exists()


def test_a_bad_token_is_a_401(synced, api):
    client = api()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/api/processes/").status_code == 401


def test_token_authentication_works_end_to_end(operator, api):
    from tests.factories import PASSWORD

    token = (
        api()
        .post(
            "/api/auth/token/", {"username": operator.username, "password": PASSWORD}, format="json"
        )
        .json()["token"]
    )
    client = api()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    response = client.post("/api/processes/", {"workflow": "wf_audited"}, format="json")
    assert response.status_code == 201


@pytest.mark.parametrize("path", ["/api/processes/", "/api/processes/{id}/resume/", "/api/engine/"])
@pytest.mark.parametrize("body", ["{broken", '{"workflow": ', "\x00", "[" * 5, "NaN"])
def test_malformed_json_is_a_400(process, admin_user, api, path, body):
    response = api(admin_user).post(
        path.format(id=process.pk), body, content_type="application/json"
    )
    assert response.status_code == 400, response.content
    assert "detail" in response.json()


def test_non_json_content_is_a_415(operator, api):
    response = api(operator).post("/api/processes/", {"workflow": "wf_audited"})  # multipart
    assert response.status_code == 415
    assert not Process.objects.exists()


def start_raw(client, body: str):
    return client.post("/api/processes/", body, content_type="application/json")


@pytest.mark.parametrize("value", ["1e400", "-1e400", "1" + "0" * 5000])
def test_out_of_range_numbers_are_a_400(operator, api, value):
    for field in ("steps", "sleep"):
        page = '{"steps": 1, "' + field + '": ' + value + "}"
        response = start_raw(api(operator), '{"workflow": "wf_counted", "input": [' + page + "]}")
        assert response.status_code == 400, response.content[:300]
    assert not Process.objects.exists()


@pytest.mark.parametrize("depth", [100, 990, 100_000])
def test_deeply_nested_json_is_a_400(operator, api, depth):
    body = '{"workflow": "wf_counted", "input": [{"steps": ' + "[" * depth + "]" * depth + "}]}"
    response = start_raw(api(operator), body)
    assert response.status_code == 400, response.content[:200]
    assert not Process.objects.exists()


def test_an_oversized_body_is_refused(operator, api):
    body = json.dumps({"workflow": "wf_counted", "input": [{"steps": 1, "x": "y" * 2_000_000}]})
    response = start_raw(api(operator), body)
    assert response.status_code == 413
    assert "detail" in response.json()
    assert not Process.objects.exists()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=None)
def test_without_a_size_limit_big_bodies_are_still_validated(operator, api):
    body = json.dumps(
        {"workflow": "wf_secret", "input": [{"username": "u" * 500_000, "password": "p"}]}
    )
    response = start_raw(api(operator), body)
    assert response.status_code == 400
    assert "username" in response.json()


@pytest.mark.parametrize(
    "page",
    [
        {"steps": "9" * 5000},
        {"steps": {"nested": [1, {"junk": [None, True]}]}},
        {"steps": [1, 2, 3]},
        {"steps": "1e400"},
        {"steps": 1, "sleep": "-1e400"},
        {"steps": 1, "sleep": "x" * 100_000},
        {"steps": True, "fail_at": -1},
        {"steps": 1, "unexpected": {"a": "b"}, "fail_at": "zero"},
    ],
)
def test_hostile_form_values_are_field_errors(operator, api, page):
    response = api(operator).post(
        "/api/processes/", {"workflow": "wf_counted", "input": [page]}, format="json"
    )
    assert response.status_code == 400, response.content[:300]
    assert response.json()["detail"].startswith("Invalid input on page 1")
    assert not Process.objects.exists()


@pytest.mark.parametrize(
    "payload",
    [
        {"workflow": "wf_counted", "input": [{"steps": 1}] * 1000},
        {"workflow": "wf_counted", "input": [{"steps": 1}, {"extra": "page"}]},
        {"workflow": "wf_counted", "input": [{"steps": 1}], "tags": ["t"] * 1000},
        {"workflow": "wf_\x00counted", "input": [{"steps": 1}]},
        {"workflow": "wf_counted", "input": [{"steps": 1}], "tags": ["a\x00b"]},
        {"workflow": "wf_counted", "input": [{"steps": 1, "\x00": 1}]},
        {"workflow": "x" * 100_000},
        {"workflow": None},
        {"workflow": {"name": "wf_counted"}},
        ["wf_counted"],
        "wf_counted",
    ],
)
def test_hostile_payloads_are_a_400(operator, api, payload):
    response = api(operator).post("/api/processes/", payload, format="json")
    assert response.status_code == 400, response.content[:300]
    assert "detail" in response.json()
    assert not Process.objects.exists()


def test_lone_surrogates_are_a_400(operator, api):
    body = '{"workflow": "\\ud800", "input": []}'
    response = start_raw(api(operator), body)
    assert response.status_code == 400
    body = '{"workflow": "wf_secret", "input": [{"username": "\\udfff", "password": "p"}]}'
    assert start_raw(api(operator), body).status_code == 400
    assert not Process.objects.exists()


@pytest.mark.parametrize(
    "path",
    [
        "/api/processes/%00/",
        "/api/processes/" + "a" * 5000 + "/",
        "/api/processes/{id}x/",
        "/api/workflows/%00/",
        "/api/workflows/" + "w" * 5000 + "/",
    ],
)
def test_hostile_ids_are_a_404(process, operator, api, path):
    response = api(operator).get(path.format(id=process.pk))
    assert response.status_code == 404
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "query",
    [
        "status=%00",
        "workflow=%00",
        "tag=" + "t" * 300,
        "is_task=maybe",
        "parent=nope",
        "limit=-5&offset=abc",
        "tag=%ED%A0%80",
    ],
)
def test_hostile_list_filters_never_fail(process, viewer, api, query):
    response = api(viewer).get(f"/api/processes/?{query}")
    assert response.status_code in (200, 400), response.content[:300]


@pytest.mark.parametrize("verb", ["put", "patch"])
def test_processes_cannot_be_edited(process, admin_user, api, verb):
    response = getattr(api(admin_user), verb)(
        f"/api/processes/{process.pk}/", {"status": "completed"}, format="json"
    )
    assert response.status_code == 405
    process.refresh_from_db()
    assert process.status == "created"


def test_callback_with_hostile_bodies_is_a_4xx(process, api):
    path = f"/api/processes/{process.pk}/callback/tok/"
    deep = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert api().post(path, deep, content_type="application/json").status_code == 400
    assert api().post(path, "x=1", content_type="text/plain").status_code == 415
    big = json.dumps({"x": "y" * 2_000_000})
    assert api().post(path, big, content_type="application/json").status_code == 413
    long_token = f"/api/processes/{ANY_ID}/callback/{'t' * 5000}/"
    assert api().post(long_token, {"ok": True}, format="json").status_code == 404


@pytest.mark.parametrize(
    "path", ["/api/no-such-endpoint/", "/api/audit/not-a-number/", "/api/processes/a/b/c/"]
)
def test_an_api_path_no_route_answers_is_the_apis_json_404(operator, api, client, path):
    for answer in (api(operator).get(path), client.get(path)):
        assert answer.status_code == 404
        assert answer["Content-Type"] == "application/json"
        assert answer.json() == {"detail": "Not found."}
    client.force_login(operator)
    page = client.get("/no-such-page/")
    assert page.status_code == 404 and "There is nothing here" in page.content.decode()
