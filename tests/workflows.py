"""Workflows the tests run; registered through ORCHESTRATOR_WORKFLOW_MODULES in tests.settings."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import quote

from asgiref.sync import sync_to_async
from django import forms
from django.db import connection

from orchestrator.catalogue import WorkflowDefinition, get_workflow
from orchestrator.context import current_process_id
from orchestrator.forms import (
    SecretField,
    VisibleModelChoiceField,
    VisibleModelMultipleChoiceField,
)
from orchestrator.models import WorkerPing, Workflow
from orchestrator.workflow import (
    State,
    StepList,
    abort,
    begin,
    callback_step,
    conditional,
    done,
    init,
    inputstep,
    retrystep,
    step,
    workflow,
)
from tests import markers

logger = logging.getLogger(__name__)


def record(marker: str) -> None:
    """A step's database effect, counted by the tests (exactly once per step)."""
    WorkerPing.objects.create(marker=marker)


class CountForm(forms.Form):
    steps = forms.IntegerField(min_value=1, max_value=200, required=False)
    sleep = forms.FloatField(min_value=0, max_value=10, initial=0, required=False)
    fail_at = forms.IntegerField(required=False, min_value=0)


def numbered_step(index: int):
    @step(f"Step {index}")
    def run(process_id: str, sleep: float | None = None, fail_at: int | None = None) -> State:
        if fail_at == index and not markers.exists(f"fix-{process_id}"):
            raise RuntimeError(f"step {index} fails on purpose")
        record(f"{process_id}:{index}")
        if sleep:
            time.sleep(sleep)
        return {f"step_{index}": "done"}

    return run


STEPS = [numbered_step(index) for index in range(200)]


def counted_steps(count: int, items: list | None = None) -> StepList:
    steps = begin >> init
    for item in (STEPS if items is None else items)[:count]:
        steps = steps >> item
    return steps >> done


@workflow("Twenty counted steps", initial_input_form=CountForm)
def wf_counted() -> StepList:
    return counted_steps(20)


def quiet_step(index: int):
    @step(f"Quiet {index}")
    def run(sleep: float | None = None) -> None:
        """Runs no SQL: its commit is the engine's one statement (alone_in_transaction)."""
        if sleep:
            time.sleep(sleep)

    return run


QUIET_STEPS = [quiet_step(index) for index in range(20)]


@workflow("Twenty steps that run no SQL", initial_input_form=CountForm)
def wf_quiet() -> StepList:
    return counted_steps(20, QUIET_STEPS)


@workflow("A hundred no-op steps")
def wf_hundred() -> StepList:
    steps = begin >> init
    for index in range(100):
        steps = steps >> noop_steps[index]
    return steps >> done


noop_steps = [step(f"No-op {index}")(lambda: None) for index in range(100)]


@retrystep("Flaky call")
def flaky_call(process_id: str) -> State:
    # Counted in a file: a failed attempt's database writes are rolled back with it.
    attempts = markers.count_attempt(f"flaky-{process_id}")
    record(f"{process_id}:flaky")
    if attempts < 3:
        raise RuntimeError("remote not ready")
    return {"flaky_attempts": attempts}


@workflow("A retry step that succeeds on the third attempt")
def wf_retry() -> StepList:
    return init >> flaky_call >> done


class HTTPError(Exception):
    """Shaped like requests' and httpx's HTTP errors: the answer is in `.response`."""

    def __init__(self, status_code: int) -> None:
        super().__init__(f"{status_code} Server Error")
        self.response = type("Response", (), {"status_code": status_code})()


def attempts_of(process_id: str, name: str) -> int:
    """How often this step of this run was tried (counted outside the database)."""
    return markers.count_attempt(f"{name}-{process_id}")


@retrystep("Call an unreachable API")
def unreachable_until_third(process_id: str) -> State:
    if attempts_of(process_id, "unreachable") < 3:
        raise ConnectionError("connection refused by netbox:443")
    return {"reached": True}


@retrystep("Call an API that answers 503")
def unavailable_until_third(process_id: str) -> State:
    if attempts_of(process_id, "unavailable") < 3:
        raise HTTPError(503)
    return {"answered": True}


@workflow("Retry steps failing like an unreachable API, then succeeding")
def wf_retry_unreachable() -> StepList:
    return init >> unreachable_until_third >> unavailable_until_third >> done


class ConfirmForm(forms.Form):
    confirm = forms.BooleanField(required=True)
    vlan = forms.IntegerField(min_value=1, max_value=4094)


@inputstep("Confirm", assignee="operator")
def confirm_step() -> type[forms.Form]:
    return ConfirmForm


@step("Use the input")
def use_input(vlan: int) -> State:
    return {"vlan_used": vlan}


@workflow("Waits for input")
def wf_input() -> StepList:
    return init >> confirm_step >> use_input >> done


@step("Skipped unless asked")
def maybe_step() -> State:
    return {"maybe_ran": True}


class FlagForm(forms.Form):
    run_it = forms.BooleanField(required=False)


@workflow("A conditional step", initial_input_form=FlagForm)
def wf_conditional() -> StepList:
    return init >> conditional(lambda state: state.get("run_it"))(maybe_step) >> done


@step("Start the external job")
def start_external(callback_route: str) -> State:
    return {"external_started": True}


@step("Check the external result")
def check_external(callback_result: dict) -> State:
    assert callback_result.get("ok") is True, "external job reported failure"
    return {"external_checked": True}


@workflow("Waits for a callback")
def wf_callback() -> StepList:
    return init >> callback_step("External job", start_external, check_external) >> done


@workflow("A callback that times out")
def wf_callback_timeout() -> StepList:
    return init >> callback_step("Slow job", start_external, check_external, timeout=1) >> done


# What careless callback steps were handed, for the tests: the real route, token included.
handed_routes: list[str] = []


@step("Hand the route on")
def hand_route_on(callback_route: str) -> State:
    """Keeps the route under keys of its own, inside longer text, and logs it."""
    handed_routes.append(callback_route)
    logger.warning("asked the job to call back at %s", callback_route)
    return {
        "my_url": callback_route,
        "job": {"notify": [f"https://orchestrator.example{callback_route}"]},
    }


@step("Hand the route on and fail")
def hand_route_on_and_fail(callback_route: str) -> State:
    handed_routes.append(callback_route)
    raise ValueError(f"the job refused to call back at {callback_route}")


@workflow("Keeps its callback route under its own keys")
def wf_callback_copied() -> StepList:
    return init >> callback_step("Copy the route", hand_route_on, check_external) >> done


@workflow("Fails with its callback route in the message")
def wf_callback_copied_failure() -> StepList:
    return init >> callback_step("Refused", hand_route_on_and_fail, check_external) >> done


class SecretForm(forms.Form):
    username = forms.CharField(max_length=50)
    password = SecretField(max_length=100)


@step("Log in somewhere")
def log_in(username: str, password: str) -> State:
    return {"login": f"{username} logged in", "echo": password, "password_length": len(password)}


@workflow("Takes a secret", initial_input_form=SecretForm)
def wf_secret() -> StepList:
    return init >> log_in >> done



@step("Keep nested copies")
def keep_nested_copies(username: str, password: str) -> State:
    """A careless step: the secret inside longer strings, nested, and as a dict key."""
    return {
        "device": {
            "config": [f"username {username} password {password}"],
            "url": f"https://{username}:{quote(password, safe='')}@device.example/",
            password: "as a key",
        }
    }


@step("Log in and fail")
def log_in_and_fail(username: str, password: str) -> State:
    logger.warning("logging in as %s with %s", username, password)
    raise ValueError(f"refused {username}:{password}")


@workflow("Fails with its secret in the message", initial_input_form=SecretForm)
def wf_secret_failure() -> StepList:
    return init >> keep_nested_copies >> log_in_and_fail >> done


@step("Hang", time_limit=1)
def hang(process_id: str) -> State:
    """Writes, then hangs where nothing can interrupt it (a sleep in C)."""
    record(f"{process_id}:hang")
    time.sleep(300)
    return {"woke_up": True}


@workflow("A step that hangs past its time limit")
def wf_hang() -> StepList:
    return init >> hang >> done


@step("Wait for the lock")
def wait_for_the_lock(process_id: str) -> State:
    """Blocks on a row lock someone else holds (the default time limit applies)."""
    record(f"{process_id}:waiting")
    WorkerPing.objects.select_for_update().get(marker="the-lock")
    return {"got_the_lock": True}


@workflow("A step blocked on a database lock")
def wf_locked() -> StepList:
    return init >> wait_for_the_lock >> done


@step("Overrun", time_limit=1)
def overrun(process_id: str) -> State:
    record(f"{process_id}:overrun")
    time.sleep(2.5)
    return {"overran": True}


@workflow("A step that overruns its limit, then returns")
def wf_overrun() -> StepList:
    return init >> overrun >> done


def lose_the_session_once(process_id: str) -> None:
    """Writes an effect; on the first call for the process its database session is then
    terminated under it (as by an administrator, or a failover), which rolls it back."""
    record(f"{process_id}:session")
    if markers.count_attempt(f"session-{process_id}") == 1:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")


@step("Lose the session")
def lose_the_session(process_id: str) -> State:
    lose_the_session_once(process_id)
    return {"session": "kept"}


@workflow("A step whose database session dies on its first attempt")
def wf_session_lost() -> StepList:
    return init >> lose_the_session >> done


@step("Assert something")
def assert_something() -> State:
    assert 1 == 2, "inventory and network disagree"


@workflow("Inconsistent data")
def wf_inconsistent() -> StepList:
    return init >> assert_something >> done


@step("Call an API")
def call_api() -> State:
    raise ConnectionError("connection refused by netbox:443")


@workflow("API unavailable")
def wf_api_down() -> StepList:
    return init >> call_api >> done


@workflow("Aborts on purpose")
def wf_abort() -> StepList:
    return init >> abort


@step("Needs a key")
def needs_key(missing_key: str) -> State:
    return {}


@workflow("Missing state key")
def wf_missing_key() -> StepList:
    return init >> needs_key >> done


def only_on_tuesdays(workflow_name: str) -> str | None:
    return "This workflow is refused by its run predicate"


@workflow("Refused by a predicate", run_predicate=only_on_tuesdays)
def wf_refused() -> StepList:
    return init >> done


class PickWorkflowForm(forms.Form):
    """Object choices in a start form and in an input step: the catalogue's own rows, so
    the engine's choice fields are tested without a domain app."""

    target = VisibleModelChoiceField(Workflow.objects.order_by("name"), to_field_name="name")


class PickMoreForm(forms.Form):
    others = VisibleModelMultipleChoiceField(Workflow.objects.all(), required=False)


@inputstep("Pick more", assignee="operator")
def pick_more() -> type[forms.Form]:
    return PickMoreForm


@workflow("Choices among objects", initial_input_form=PickWorkflowForm)
def wf_pick() -> StepList:
    return init >> pick_more >> done


def _test(name: str, is_task: bool = True) -> WorkflowDefinition:
    return WorkflowDefinition(name=name, module=__name__, function=name, is_task=is_task)


WORKFLOWS = [
    _test(name)
    for name in (
        "wf_counted",
        "wf_quiet",
        "wf_hundred",
        "wf_retry",
        "wf_retry_unreachable",
        "wf_input",
        "wf_conditional",
        "wf_callback",
        "wf_callback_timeout",
        "wf_callback_copied",
        "wf_callback_copied_failure",
        "wf_secret",
        "wf_secret_failure",
        "wf_inconsistent",
        "wf_api_down",
        "wf_abort",
        "wf_missing_key",
        "wf_hang",
        "wf_locked",
        "wf_overrun",
        "wf_session_lost",
        "wf_refused",
        "wf_pick",
        "wf_nested",
        "wf_async",
        "wf_async_retry",
    )
] + [_test("wf_audited", is_task=False)]


@workflow("A non-task workflow (kept for audit)")
def wf_audited() -> StepList:
    return init >> done


@step("Build config")
def build_config() -> State:
    ports = [{"name": "xe-0/0/1", "speed": "10G"}, {"name": "xe-0/0/2", "speed": "10G"}]
    return {"config": {"hostname": "ams-edge-01", "ports": ports, "vlan": 10, "legacy": True}}


@step("Upgrade port")
def upgrade_port(config: dict) -> State:
    config["ports"][1]["speed"] = "100G"
    config["mtu"] = 9000
    del config["legacy"]
    return {"config": config}


@workflow("Change one port of a nested configuration")
def wf_nested() -> StepList:
    return init >> build_config >> upgrade_port >> done


# --- async steps ------------------------------------------------------------------------------


class AsyncForm(forms.Form):
    value = forms.IntegerField()
    fail = forms.BooleanField(required=False)
    direct = forms.BooleanField(required=False)


@step("Write asynchronously")
async def write_async(process_id: str, value: int, fail: bool = False,
                      direct: bool = False) -> State:
    await asyncio.sleep(0.01)
    if direct:  # the ORM called straight from a coroutine: Django refuses
        WorkerPing.objects.create(marker=f"{process_id}:async-direct")
    await WorkerPing.objects.acreate(marker=f"{process_id}:async-orm")
    await sync_to_async(record)(f"{process_id}:async-sync")
    in_step = await sync_to_async(lambda: connection.in_atomic_block)()
    if fail:
        raise RuntimeError("the async step fails after writing")
    return {"doubled": value * 2, "in_step_transaction": in_step, "run": current_process_id()}


@step("Execute a child asynchronously")
async def execute_async(doubled: int) -> State:
    child = await get_workflow().execute_workflow(
        workflow="wf_child", parameters={"value": doubled}, expected_return=int)
    return {"child": child}


@workflow("Async steps: ORM writes through sync_to_async, a child executed",
          initial_input_form=AsyncForm)
def wf_async() -> StepList:
    return init >> write_async >> execute_async >> done


@retrystep("Retry asynchronously")
async def retry_async(process_id: str) -> State:
    await asyncio.sleep(0)
    if attempts_of(process_id, "async-retry") < 2:
        raise ConnectionError("not reachable yet")
    return {"retried": True}


@workflow("An async retry step that succeeds on its second attempt")
def wf_async_retry() -> StepList:
    return init >> retry_async >> done
