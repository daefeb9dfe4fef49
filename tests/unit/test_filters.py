"""A malformed filter value is a 400 naming the filter on every API list, and an error on the
list pages that lists nothing; never silently ignored (issue 7, item 10)."""

from __future__ import annotations

import django_filters
import pytest
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import URLPattern

from orchestrator.filters import StrictFilterBackend
from tests.helpers import start

pytestmark = pytest.mark.django_db

MALFORMED = [
    (django_filters.BooleanFilter, "maybe"),
    (django_filters.UUIDFilter, "not-a-uuid"),
    (django_filters.ChoiceFilter, "no-such-choice"),
    (django_filters.DateTimeFilter, "2024-13-45T99:00"),
    (django_filters.DateFilter, "2024-13-45"),
    (django_filters.NumberFilter, "twelve"),
]


def list_views(patterns=None, prefix: str = "/"):
    """(path, view class) of every API list route (a viewset's `list` action)."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        text = str(entry.pattern).removeprefix("^").removesuffix("$")
        if isinstance(entry, URLResolver):
            yield from list_views(entry.url_patterns, prefix + text)
        elif isinstance(entry, URLPattern):
            actions = getattr(entry.callback, "actions", {}) or {}
            if actions.get("get") == "list" and "(" not in text and "<" not in text:
                yield prefix + text, entry.callback.cls


def malformed_filters() -> list[tuple[str, str, str]]:
    """(list path, filter name, a malformed value) for every typed filter of every API list."""
    cases = []
    for path, view_class in list_views():
        view = view_class()
        view.swagger_fake_view = True  # get_queryset without a request
        filterset_class = StrictFilterBackend().get_filterset_class(view, view.get_queryset())
        if filterset_class is None:
            continue
        for name, filter_ in filterset_class.base_filters.items():
            for filter_type, value in MALFORMED:
                if isinstance(filter_, filter_type):
                    cases.append((path, name, value))
                    break
    return cases


def test_every_typed_api_filter_is_checked():
    names = {(path, name) for path, name, _ in malformed_filters()}
    assert ("/api/processes/", "is_task") in names
    assert ("/api/processes/", "subscription") in names
    assert ("/api/schedules/", "enabled") in names
    assert ("/api/subscriptions/", "insync") in names
    assert len(names) >= 10


@pytest.mark.parametrize(("path", "name", "value"), malformed_filters())
def test_a_malformed_api_filter_value_is_a_400_naming_it(admin_user, api, path, name, value):
    # An admin may read every list (the audit trail too), so the filter itself answers.
    start("wf_audited", user=admin_user)
    response = api(admin_user).get(path, {name: value})
    assert response.status_code == 400, (path, name, response.content)
    body = response.json()
    assert name in body and isinstance(body[name], list)
    assert name in body["detail"]


@pytest.mark.parametrize(
    ("query", "field"),
    [("limit=abc", "limit"), ("limit=0", "limit"), ("limit=-5", "limit"), ("limit=1.5", "limit"),
     ("offset=-1", "offset"), ("offset=x", "offset"), ("offset=" + "9" * 30, "offset"),
     ("limit=%C2%B2", "limit")],
)
def test_malformed_pagination_is_a_400_naming_it(viewer, api, query, field):
    for path in ("/api/processes/", "/api/workflows/", "/api/subscriptions/"):
        response = api(viewer).get(f"{path}?{query}")
        assert response.status_code == 400, (path, query)
        assert field in response.json()


def test_filters_still_filter_and_blank_values_are_no_filter(operator, viewer, api):
    task = start("wf_counted", {"steps": 1}, user=operator)
    workflow_run = start("wf_audited", user=operator)
    client = api(viewer)

    def ids(query: str) -> set[str]:
        response = client.get(f"/api/processes/?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert ids("is_task=true") == ids("is_task=TRUE") == ids("is_task=1") == {str(task.pk)}
    assert ids("is_task=false") == ids("is_task=0") == {str(workflow_run.pk)}
    assert ids("is_task=") == ids("limit=&offset=") == {str(task.pk), str(workflow_run.pk)}
    assert ids(f"subscription={'8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11'}") == set()


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/processes/?is_task=maybe", "is_task"),
        ("/processes/?status=exploded", "status"),
        ("/subscriptions/?insync=maybe", "insync"),
        ("/subscriptions/?status=exploded", "status"),
    ],
)
def test_a_malformed_filter_on_a_page_is_shown_and_lists_nothing(client, operator, url, field):
    start("wf_audited", user=operator)
    client.force_login(operator)
    response = client.get(url)
    assert response.status_code == 400
    assert field in response.context["filter"].errors
    assert not response.context["page"].object_list
    assert "Nothing is listed" in response.content.decode()
    assert client.get(url.split("?")[0]).status_code == 200
