"""The benchmarks' workflows and their raw-Celery baseline tasks."""

import redis
from celery import shared_task

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.workflow import StepList, begin, done, init, step, workflow

STEP_COUNT = 100
LOAD_STEP_COUNT = 10
NOOP_STEPS = [step(f"No-op {index}")(lambda: None) for index in range(STEP_COUNT)]


@workflow("A hundred no-op steps (benchmark)")
def bench_hundred_steps() -> StepList:
    steps = begin >> init
    for item in NOOP_STEPS:
        steps = steps >> item
    return steps >> done


@workflow("Ten no-op steps (load benchmark)")
def bench_ten_steps() -> StepList:
    steps = begin >> init
    for item in NOOP_STEPS[:LOAD_STEP_COUNT]:
        steps = steps >> item
    return steps >> done


@shared_task(name="bench.noop", ignore_result=True)
def noop_task() -> None:
    return None


_counters: dict[str, redis.Redis] = {}


@shared_task(name="bench.counted_noop", ignore_result=True)
def counted_noop_task(counter_url: str, key: str) -> None:
    """A no-op that counts itself done (one Redis INCR), so the sender knows when N ran."""
    client = _counters.get(counter_url)
    if client is None:
        client = _counters[counter_url] = redis.Redis.from_url(counter_url)
    client.incr(key)


WORKFLOWS = [
    WorkflowDefinition(
        name="bench_hundred_steps",
        module=__name__,
        function="bench_hundred_steps",
        is_task=True,
    ),
    WorkflowDefinition(
        name="bench_ten_steps", module=__name__, function="bench_ten_steps", is_task=True
    ),
]
