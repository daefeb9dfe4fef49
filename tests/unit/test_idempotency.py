"""A double submit makes one run: `Idempotency-Key` on `POST /api/processes/`, and the one-time
key of the browser's start form; sequential and truly concurrent (threads, real database)."""

from __future__ import annotations

import datetime
import re
import threading
from collections.abc import Callable

import pytest
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from orchestrator.models import IdempotencyKey, Process
from tests.factories import user_with_role

START = {"workflow": "task_demo", "input": [{"message": "once", "step_seconds": 0}]}


def post_start(user, body=START, key: str | None = "key-1"):
    client = APIClient()
    client.force_authenticate(user)
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return client.post("/api/processes/", body, format="json", **headers)


@pytest.mark.django_db
def test_the_same_key_and_body_answer_with_the_first_run(operator):
    first = post_start(operator)
    again = post_start(operator, body={"input": START["input"], "workflow": "task_demo"})
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
    assert Process.objects.count() == 1


@pytest.mark.django_db
def test_the_same_key_with_another_body_is_a_422_and_starts_nothing(operator):
    first = post_start(operator)
    other = post_start(operator, body={**START, "input": [{"message": "other"}]})
    assert other.status_code == 422
    body = other.json()
    assert "already used with a different request" in body["detail"]
    assert first.json()["id"] in body["detail"] and body["idempotency_key"]
    assert Process.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_user_and_expire(operator, settings):
    first = post_start(operator)
    theirs = post_start(user_with_role("operator"))
    assert theirs.status_code == 201 and theirs.json()["id"] != first.json()["id"]
    settings.ORCHESTRATOR_IDEMPOTENCY_KEY_HOURS = 24
    IdempotencyKey.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    later = post_start(operator)
    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert "Idempotent-Replayed" not in later
    from orchestrator.services import clean_up_idempotency_keys

    IdempotencyKey.objects.update(created_at=timezone.now() - datetime.timedelta(hours=25))
    assert clean_up_idempotency_keys() == 2 and not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_refused_start_keeps_no_key_so_the_corrected_request_runs(operator):
    refused = post_start(operator, body={**START, "input": [{"message": "x" * 300}]})
    assert refused.status_code == 400 and not IdempotencyKey.objects.exists()
    assert post_start(operator).status_code == 201


@pytest.mark.django_db
@pytest.mark.parametrize("key", ["", "k" * 256, "caf\u00e9", "tab\there"])
def test_a_malformed_key_is_a_400_naming_it(operator, key):
    response = post_start(operator, key=key)
    assert response.status_code == 400, response.content
    assert "Idempotency-Key" in response.json()["detail"]
    assert not Process.objects.exists()


def concurrently(count: int, call: Callable[[int], object]) -> list[object]:
    """Run `call(i)` in `count` threads released together; each thread's own connection."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = call(index)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_requests_with_one_key_make_one_run(operator):
    answers = concurrently(6, lambda index: post_start(operator))
    assert [answer.status_code for answer in answers] == [201] * 6
    assert len({answer.json()["id"] for answer in answers}) == 1
    assert Process.objects.count() == 1 and IdempotencyKey.objects.count() == 1
    assert sum(answer.has_header("Idempotent-Replayed") for answer in answers) == 5


# --- the browser's start form -------------------------------------------------------------


def once_key(page: str) -> str:
    return re.search(r'name="__once" value="([^"]+)"', page).group(1)


def start_page(client: Client) -> tuple[str, str]:
    url = reverse("workflow-start", args=["task_demo"])
    return url, once_key(client.get(url).content.decode())


@pytest.mark.django_db
def test_two_clicks_on_a_start_form_make_one_run(client, operator):
    client.force_login(operator)
    url, once = start_page(client)
    data = {"__once": once, "message": "twice", "step_seconds": "0"}
    first, second = client.post(url, data), client.post(url, data)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Process.objects.count() == 1
    page = client.get(second["Location"]).content.decode()
    assert "This form was submitted before" in page
    changed = client.post(url, {**data, "message": "changed"})
    assert changed.status_code == 400
    assert "submitted before, with other values" in changed.content.decode()
    assert once_key(changed.content.decode()) != once  # a new key: submitting again is a run
    assert Process.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_submits_of_one_start_form_make_one_run(synced, operator):
    client = Client()
    client.force_login(operator)
    url, once = start_page(client)
    data = {"__once": once, "message": "raced", "step_seconds": "0"}
    cookies = client.cookies

    def submit(index: int):
        browser = Client()
        browser.cookies = cookies
        return browser.post(url, data)

    answers = concurrently(4, submit)
    assert [answer.status_code for answer in answers] == [302] * 4
    assert len({answer["Location"] for answer in answers}) == 1
    assert Process.objects.count() == 1
