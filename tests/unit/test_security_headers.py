"""Every page and API answer: `Cache-Control: no-store` and a Content-Security-Policy that
runs only the project's own scripts (inline styles only in third-party UIs)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, str]:
    return {
        part.strip().split(" ", 1)[0]: part.strip().split(" ", 1)[1]
        for part in response["Content-Security-Policy"].split(";")
    }


def assert_not_cached(response) -> None:
    cache_control = response["Cache-Control"]
    assert "no-store" in cache_control and "private" in cache_control, cache_control


@pytest.mark.parametrize("path", ["/", "/processes/", "/workflows/task_demo/start/", "/login/"])
def test_pages_are_not_cached_and_run_only_their_own_scripts_and_styles(client, operator, path):
    client.force_login(operator)
    response = client.get(path)
    assert response.status_code == 200
    assert_not_cached(response)
    directives = policy(response)
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in response["Content-Security-Policy"]


def test_api_answers_are_not_cached(api, operator):
    for response in (api(operator).get("/api/processes/"), api().get("/api/processes/")):
        assert response.status_code in (200, 401)
        assert_not_cached(response)


def test_the_admin_may_use_inline_styles_but_never_inline_scripts(client, admin_user):
    admin_user.is_staff = True
    admin_user.save()
    client.force_login(admin_user)
    response = client.get("/admin/")
    assert response.status_code == 200
    assert_not_cached(response)
    directives = policy(response)
    assert directives["style-src"] == "'self' 'unsafe-inline'"
    assert directives["script-src"] == "'self'"


def test_static_files_are_served_without_the_page_headers(client):
    response = client.get("/static/js/live.js")
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
