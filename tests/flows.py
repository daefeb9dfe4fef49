"""Flows the tests run; registered through ORCHESTRATOR_WORKFLOW_MODULES in tests.settings."""

from __future__ import annotations

import asyncio
import datetime
import enum
import logging
import os
import time

import pydantic

from orchestrator.catalogue import get_workflow
from orchestrator.flows import (
    CeleryTaskRunner,
    exponential_backoff,
    flow,
    get_run_context,
    task,
    task_input_hash,
    unmapped,
)
from orchestrator.models import WorkerPing
from orchestrator.workflows.utils import add_tags
from tests import markers
from tests.workflows import lose_the_session_once

logger = logging.getLogger("tests.flows")


def record(marker: str) -> None:
    """A task body's database effect, counted by the tests."""
    WorkerPing.objects.create(marker=marker[:100])


def run_id() -> str:
    return get_run_context().flow_run.id


def fixed(process_id: str) -> bool:
    return markers.exists(f"fix-{process_id}")


# --- ten counted tasks (crash and retry tests) ----------------------------------------------


@task(task_run_name="step-{index}")
def counted(index: int, sleep: float = 0, fail_at: int | None = None,
            where: bool = False) -> int:
    process_id = run_id()
    if fail_at == index and not fixed(process_id):
        raise RuntimeError(f"task {index} fails on purpose")
    record(f"{process_id}:{index}")
    if where:  # which worker process ran it
        record(f"pid:{process_id}:{index}:{os.getpid()}")
    if sleep:
        time.sleep(sleep)
    return index * 10


@flow
def flow_counted(tasks: int = 10, sleep: float = 0, fail_at: int | None = None) -> int:
    return sum(counted(index, sleep, fail_at) for index in range(tasks))


@flow
def flow_submitted(tasks: int = 10, sleep: float = 0) -> list[int]:
    futures = [counted.submit(index, sleep) for index in range(tasks)]
    return [future.result() for future in futures]


@flow(task_runner=CeleryTaskRunner())
def flow_on_celery(tasks: int = 10, sleep: float = 0, fail_at: int | None = None) -> int:
    """Ten counted task runs, submitted as Celery tasks."""
    WorkerPing.objects.get_or_create(marker=f"flow-pid:{run_id()}:{os.getpid()}")
    futures = [counted.submit(index, sleep, fail_at, where=True) for index in range(tasks)]
    return sum(future.result() for future in futures)


@flow
def flow_mapped(values: list[int]) -> list[int]:
    return counted.map(values, unmapped(0)).result()


@task
def noop() -> None:
    return None


@flow
def flow_noop(tasks: int = 100) -> None:
    for _ in range(tasks):
        noop()


@flow
def flow_noop_submitted(tasks: int = 100) -> None:
    for future in [noop.submit() for _ in range(tasks)]:
        future.wait()


# --- retries --------------------------------------------------------------------------------


@task(retries=4, retry_delay_seconds=[0.3, 0.1, 0.6])
def flaky(succeed_on: int) -> int:
    attempt = get_run_context().task_run.run_count
    record(f"{run_id()}:flaky:{attempt}")
    if attempt < succeed_on:
        raise ConnectionError(f"attempt {attempt} fails")
    return attempt


@flow
def flow_retry_delays(succeed_on: int = 5) -> int:
    return flaky(succeed_on)


def retry_only_connection_errors(task, task_run, state) -> bool:
    return isinstance(state.data, ConnectionError)


@task(retries=5, retry_delay_seconds=0, retry_condition_fn=retry_only_connection_errors)
def picky(fail_with: str) -> None:
    attempt = get_run_context().task_run.run_count
    record(f"{run_id()}:picky:{attempt}")
    if attempt == 1:
        raise ConnectionError("first attempt: retried")
    raise {"value": ValueError, "connection": ConnectionError}[fail_with]("not retried")


@flow
def flow_retry_condition(fail_with: str = "value") -> None:
    picky(fail_with)


@flow(retries=1, retry_delay_seconds=0)
def flow_retried(fail_times: int = 1) -> str:
    process_id = run_id()
    counted(0)
    attempts = WorkerPing.objects.filter(marker=f"{process_id}:flow-attempt").count()
    if attempts < fail_times:
        WorkerPing.objects.create(marker=f"{process_id}:flow-attempt")
        raise RuntimeError("the flow fails once")
    counted(1)
    return "done"


# --- hooks ----------------------------------------------------------------------------------


def hook(name: str):
    def record_hook(definition, run, state) -> None:
        flow_run_id = getattr(run, "flow_run_id", None) or run.id
        record(f"{flow_run_id}:{name}:{state.type.value}")

    record_hook.__name__ = name
    return record_hook


@task(on_completion=[hook("task-completion")], on_failure=[hook("task-failure")],
      retries=1, retry_delay_seconds=0)
def hooked_task(fail: bool) -> str:
    if fail:
        raise RuntimeError("task fails")
    return "ok"


@flow(on_running=[hook("flow-running")], on_completion=[hook("flow-completion")],
      on_failure=[hook("flow-failure")], on_cancellation=[hook("flow-cancellation")],
      on_crashed=[hook("flow-crashed")])
def flow_hooks(fail: bool = False, wait: float = 0) -> str:
    result = hooked_task(fail)
    if wait:
        counted.with_options(name="slow")(0, sleep=wait)
    return result


# --- caching --------------------------------------------------------------------------------


@task(cache_key_fn=task_input_hash, cache_expiration=datetime.timedelta(seconds=1))
def expensive(value: int) -> int:
    record(f"expensive:{value}")
    return value * 2


@flow
def flow_cached(value: int = 1) -> int:
    return expensive(value)


# --- sub-flows ------------------------------------------------------------------------------


@flow(flow_run_name="child-{value}")
def flow_child(value: int) -> int:
    return counted(value) + 1


@flow
def flow_parent(values: list[int]) -> list[int]:
    return [flow_child(value) for value in values]


# --- runs of get_workflow() inside a flow run: children of the flow -------------------------


@task
def execute_in_task(value: int) -> int:
    add_tags(nodes=[f"n{value}"])  # the flow run, the current run of its tasks
    return get_workflow().execute_workflow(workflow="wf_child", parameters={"value": value},
                                           expected_return=int)


@flow
def flow_kids(value: int = 1, fail: bool = False, hold: float = 0) -> dict:
    """Every way a flow starts runs: submit, a sub-flow, execute, a batch, from a task."""
    client = get_workflow()
    submitted = client.submit_workflow(workflow="wf_child", parameters={"value": value})
    sub = flow_child(value)
    executed = client.execute_workflow(  # no timeout inside a flow run: it parks
        workflow="wf_child", parameters={"value": value + 1, "fail": fail, "hold": hold},
        expected_return=int, timeout=0.001)
    batch = client.create_batch()
    for item in (value + 2, value + 3):
        batch.add(workflow="wf_child", parameters={"value": item, "hold": hold})
    pairs = [[result, str(error) if error else None] for result, error in batch]
    return {"submitted": submitted, "sub": sub, "executed": executed, "batch": pairs,
            "in_task": execute_in_task(value + 4)}


@flow
async def flow_kids_async(value: int = 1) -> dict:
    client = get_workflow()
    executed = await client.execute_workflow(workflow="wf_child", parameters={"value": value},
                                             expected_return=int)
    batch = client.create_batch()
    for item in (value + 1, value + 2):
        batch.add(workflow="wf_child", parameters={"value": item})
    pairs = [[result, error] async for result, error in batch]
    return {"executed": executed, "batch": pairs, "sub": await flow_child(value + 3)}


@flow(retries=1, retry_delay_seconds=2)
def flow_flaky_child(value: int) -> int:
    """Fails its first turn (its retry waits 2 s): its parent parks meanwhile."""
    process_id = run_id()
    record(f"{process_id}:flaky-child")
    if WorkerPing.objects.filter(marker=f"{process_id}:flaky-child").count() < 2:
        raise RuntimeError("the child fails once")
    return value


@flow
def flow_parks(value: int = 1) -> int:
    return get_workflow().execute_workflow(workflow="flow-flaky-child",
                                           parameters={"value": value}) + counted(0)


# --- parameters -----------------------------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Site(pydantic.BaseModel):
    name: str
    racks: int = 1


@flow(flow_run_name="typed-{name}")
def flow_typed(name: str, count: int, when: datetime.datetime, ids: list[int],
               colour: Colour = Colour.RED, site: Site | None = None,
               ratio: float = 0.5, enabled: bool = True) -> dict:
    return {
        "name": name, "count": count, "when": when.isoformat(), "ids": ids,
        "colour": colour.value, "site": site.model_dump() if site else None,
        "ratio": ratio, "enabled": enabled, "types": [type(when).__name__, type(colour).__name__],
    }


@flow
def flow_secret(username: str, password: pydantic.SecretStr) -> str:
    logger.info("logging in as %s with %s", username, password.get_secret_value())
    return f"{username}:{password.get_secret_value()}"


# --- async, timeouts, logs ------------------------------------------------------------------


@task
async def async_double(value: int) -> int:
    await asyncio.sleep(0.01)
    return value * 2


@task
def sync_add(a: int, b: int) -> int:
    record(f"{run_id()}:add:{a}+{b}")
    return a + b


@flow
async def flow_async(values: list[int]) -> int:
    doubled = await asyncio.gather(*(async_double(value) for value in values))
    return sync_add(sum(doubled), 1)


@task(timeout_seconds=0.3, on_failure=[hook("timeout-failure")])
def too_slow(seconds: float) -> str:
    time.sleep(seconds)
    record(f"{run_id()}:too-slow-finished")
    return "finished"


@flow
def flow_timeout(seconds: float = 1.0) -> str:
    return too_slow(seconds)


@task(log_prints=True)
def chatty(word: str) -> str:
    print(f"printing {word}")
    logger.warning("warning about %s", word)
    return word


@flow(log_prints=True)
def flow_logs(word: str = "hello") -> str:
    print("flow body prints")
    return chatty(word)


@task(retries=2, retry_delay_seconds=exponential_backoff(0.01))
def unstorable() -> object:
    return object()


@flow
def flow_unstorable() -> None:
    unstorable()


@task(retries=1, retry_delay_seconds=0, task_run_name="deploy-{site}")
def deploy(site: str, token: str) -> int:
    attempt = get_run_context().task_run.run_count
    record(f"{run_id()}:deploy:{attempt}")  # rolled back with a failed attempt
    logger.debug("debug detail of attempt %s", attempt)
    logger.info("deploying %s (attempt %s) with token %s", site, attempt, token)
    if attempt == 1:
        raise ConnectionError(f"{site} refused the connection")
    return attempt


@task
async def announce(site: str) -> str:
    logger.info("announcing %s", site)
    return site


@flow(flow_run_name="deploy-{site}")
def flow_deploy(site: str = "ams1", lines: int = 0, token: pydantic.SecretStr | None = None,
                pause: float = 0) -> int:
    """Deploys a site in two tasks, logging as it goes (run logs)."""
    logger.info("deploying %s in %s lines", site, lines)
    for index in range(lines):
        logger.info("progress line %s", index)
    secret = token.get_secret_value() if token else "none"
    attempts = deploy(site, secret)
    time.sleep(pause)
    announce(site)
    time.sleep(pause)
    return attempts


WORKFLOWS = [
    flow_counted, flow_submitted, flow_mapped, flow_noop, flow_noop_submitted,
    flow_retry_delays, flow_retry_condition, flow_retried, flow_hooks, flow_cached,
    flow_child, flow_parent, flow_typed, flow_secret, flow_async, flow_timeout, flow_logs,
    flow_unstorable, flow_deploy,
]


@task
def fails_quietly() -> None:
    raise ValueError("nobody looked at me")


@flow
def flow_counted_submitted_failure() -> str:
    fails_quietly.submit()
    return "returned before its submitted task failed"


@flow(timeout_seconds=0.3)
def flow_slow_flow() -> None:
    for _ in range(10):
        counted.with_options(name="tick")(0, sleep=0.1)


@task
def lose_the_session() -> str:
    lose_the_session_once(run_id())
    return "kept"


@flow
def flow_session_lost() -> str:
    return lose_the_session()


WORKFLOWS += [flow_counted_submitted_failure, flow_slow_flow, flow_kids, flow_kids_async,
              flow_flaky_child, flow_parks, flow_on_celery, flow_session_lost]
