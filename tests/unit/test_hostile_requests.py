"""Every route, page or API or admin, with what no view can read in its path, its query or
its form: a 404 or a 400 naming the parameter, never a 500 (issue 7, item 9)."""

from __future__ import annotations

import re

import pytest
from django.test import Client
from django.urls import URLResolver, get_resolver

from orchestrator.middleware import MAX_PARAMETER
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db

PARAMETER = re.compile(r"<(?:\w+:)?\w+>|\(\?P<\w+>(?:[^()]|\([^()]*\))*\)")


def pattern_text(pattern) -> str:
    text = str(pattern)
    return text.removeprefix("^").removesuffix("$").replace("\\.", ".")


def routes(patterns=None, prefix: str = "/"):
    """Every route's path template, with the resolvers' prefixes."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            yield from routes(entry.url_patterns, prefix + pattern_text(entry.pattern))
        else:
            yield prefix + pattern_text(entry.pattern)


def with_parameters(value: str) -> list[str]:
    """Each route that takes path parameters, with `value` in every one of them."""
    paths = []
    for template in routes():
        if not PARAMETER.search(template):
            continue
        path = PARAMETER.sub(value, template)
        if not re.search(r"[()^$?*+\[\]\\]", path):  # a regex we cannot fill in plainly
            paths.append(path)
    return paths


@pytest.fixture
def superuser_client(synced):
    client = Client(raise_request_exception=False)
    client.force_login(user_with_role(None, is_superuser=True, is_staff=True))
    return client


@pytest.mark.parametrize("value", ["%00", "a%00b", "n" * 300])
def test_every_route_with_a_hostile_path_parameter_is_a_404(superuser_client, value):
    paths = with_parameters(value)
    assert len(paths) >= 20  # the pages, the API routes and the admin's object routes
    for path in paths:
        for method in ("get", "post"):
            response = getattr(superuser_client, method)(path)
            assert response.status_code == 404, (method, path, response.status_code)
            if path.startswith("/api/"):
                assert response.json() == {"detail": "Not found."}


def test_a_page_route_with_nul_in_its_name_is_a_404_page(superuser_client):
    response = superuser_client.get("/workflows/%00/start/")
    assert response.status_code == 404
    assert b"Not found" in response.content


PAGES_WITH_PARAMETERS = [
    "/processes/?workflow={v}",
    "/processes/?tag={v}",
    "/subscriptions/?search={v}",
    "/subscriptions/?product={v}",
    "/workflows/task_demo/start/?product={v}",
    "/workflows/task_demo/start/?subscription={v}",
    "/admin/orchestrator/process/?q={v}",
    "/admin/subscriptions/subscription/?q={v}",
    "/admin/auth/user/?q={v}",
    "/login/?next={v}",
    "/api/processes/?tag={v}",
    "/api/subscriptions/?search={v}",
    "/api/workflows/?{v}=1",
]


@pytest.mark.parametrize("template", PAGES_WITH_PARAMETERS)
@pytest.mark.parametrize("value", ["%00", "x%00y", "q" * (MAX_PARAMETER + 1)])
def test_a_hostile_query_parameter_is_a_400_naming_it(superuser_client, template, value):
    response = superuser_client.get(template.format(v=value))
    assert response.status_code == 400, (template, response.status_code)
    name = template.split("?")[1].split("=")[0]
    if template.startswith("/api/"):
        body = response.json()
        assert body["detail"].startswith("Invalid parameter(s): ")
        assert (name if "{v}" not in name else "?") in body
    else:
        assert b"Bad request" in response.content


def test_every_parameterless_route_refuses_a_nul_query_value(superuser_client):
    paths = [path for path in routes() if not PARAMETER.search(path)
             and not re.search(r"[()^$?*+\[\]\\]", path)]
    assert len(paths) >= 15
    for path in paths:
        response = superuser_client.get(f"{path}?page=%00")
        assert response.status_code == 400, (path, response.status_code)


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/workflows/task_demo/start/", {"message": "hi", "__product": "\x00"}),
        ("/workflows/task_demo/start/", {"message": "hi", "__subscription": "\x00"}),
        ("/workflows/task_demo/start/", {"message": "hi\x00"}),
        ("/engine/", {"paused": "1", "next": "/\x00"}),
        ("/login/", {"username": "a\x00", "password": "p"}),
    ],
)
def test_a_posted_form_field_with_nul_is_a_400(superuser_client, path, data):
    from orchestrator.models import EngineSettings, Process

    response = superuser_client.post(path, data)
    assert response.status_code == 400, (path, response.status_code)
    assert not Process.objects.exists()
    assert not EngineSettings.objects.filter(paused=True).exists()


@pytest.mark.parametrize("path", ["/healthz", "/login/", "/", "/api/workflows/"])
def test_a_host_not_allowed_is_a_400_not_a_500(path):
    """A Host header outside ALLOWED_HOSTS (a probe or scanner by IP address) fails before the
    authentication middleware: its error page is rendered without a user."""
    response = Client(raise_request_exception=False).get(path, HTTP_HOST="10.0.0.9")
    assert response.status_code == 400
    assert b"<h1>Bad request</h1>" in response.content
