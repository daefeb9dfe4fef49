"""API fuzzing: schemathesis over `/api/schema/`, as an authenticated operator.

Every operation of the schema gets generated requests, valid ones and invalid ones (and
valid ones aimed at objects that exist), sent to the in-process WSGI application. Every
answer must be a non-5xx with a status code, content type, headers and body that the schema
documents for that operation, and an invalid request must be refused with a 4xx. The run is
deterministic (derandomized Hypothesis, no example database), so CI does not flake; every
operation gets requests of each kind, at least MIN_CASES in all. FUZZ_EXAMPLES=<n> makes up
to n requests per operation and kind instead of EXAMPLES (CI's: about 700 requests in all).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.tokens import issue_token

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))  # per operation and kind of request
MIN_CASES = 100 * EXAMPLES  # Hypothesis stops early on small spaces
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture
def application():
    """The project's WSGI application, keeping the test's database connection open (as
    Django's test client does: a finished request closes it otherwise)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield WSGIHandler()
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def seeded(operator, create_box, three_tier) -> dict[str, str]:
    """Objects of every kind the API serves, by the path prefix of their detail route."""
    from django_celery_beat.models import PeriodicTask

    from blueprints import services as blueprint_services
    from orchestrator.models import AuditEvent, Process
    from tests.helpers import run, start

    subscription = create_box("fuzzed")
    execution = blueprint_services.create_execution(blueprint=three_tier, data={})
    run(start("wf_input", user=operator))  # suspended, with a form
    return {
        "/api/subscriptions/": str(subscription.pk),
        "/api/products/": str(subscription.product_id),
        "/api/processes/": str(Process.objects.filter(workflow__name="wf_input").get().pk),
        "/api/blueprints/": str(three_tier.pk),
        "/api/templates/": str(three_tier.templates.first().pk),
        "/api/executions/": str(execution.pk),
        "/api/audit/": str(AuditEvent.objects.order_by("pk").values_list("pk", flat=True)[0]),
        "/api/workflows/": "create_box",
        "/api/schedules/": str(PeriodicTask.objects.order_by("pk").values_list("pk", flat=True)[0]),
    }


def known_ids(path: str, seeded: dict[str, str]) -> dict[str, str] | None:
    for prefix, value in seeded.items():
        if path.startswith(prefix) and path[len(prefix):].startswith("{"):
            name = path[len(prefix) + 1:].split("}", 1)[0]
            return {name: value}
    return None


def negatable(operation: Any) -> bool:
    """Whether invalid requests can be made: not with path parameters and credentials alone
    (any text is a name; Hypothesis would give up after hundreds of tries)."""
    headers = [header for header in operation.headers if header.name != "Authorization"]
    return bool(len(operation.query) or headers or len(operation.body))


def fuzz(strategy: Any, call: Callable[[Any], None]) -> None:
    @given(case=strategy)
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run_cases(case: Any) -> None:
        call(case)

    run_cases()


def test_every_operation_answers_as_its_schema_says(operator, seeded, application):
    headers = {"Authorization": f"Token {issue_token(operator)}"}
    schema = schemathesis.openapi.from_wsgi("/api/schema/", application, headers=headers)
    planned: set[tuple[str, str]] = set()
    sent: list[tuple[str, str]] = []  # (operation, kind) of each request
    failures: list[str] = []

    for result in schema.get_all_operations():
        operation = result.ok()
        strategies = {"valid": operation.as_strategy(GenerationMode.POSITIVE)}
        if negatable(operation):
            strategies["invalid"] = operation.as_strategy(GenerationMode.NEGATIVE)
        path_parameters = known_ids(operation.path, seeded)
        if path_parameters:
            strategies["existing"] = operation.as_strategy(path_parameters=path_parameters)
        for kind, strategy in strategies.items():
            planned.add((operation.label, kind))

            def call(case: Any, key=(operation.label, kind)) -> None:
                sent.append(key)
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                fuzz(strategy, call)
            except (Exception, BaseExceptionGroup) as failure:  # noqa: BLE001 - report them all
                failures.append(f"{operation.label}: {failure}")
    assert not failures, "\n\n".join(failures)
    assert not planned - set(sent), f"never sent: {sorted(planned - set(sent))}"
    assert len(sent) >= MIN_CASES, f"only {len(sent)} generated requests"
