"""The benchmark's workflow and its raw-Celery baseline task."""

from celery import shared_task

from orchestrator.catalogue import WorkflowDefinition
from orchestrator.workflow import StepList, begin, done, init, step, workflow

STEP_COUNT = 100
NOOP_STEPS = [step(f"No-op {index}")(lambda: None) for index in range(STEP_COUNT)]


@workflow("A hundred no-op steps (benchmark)")
def bench_hundred_steps() -> StepList:
    steps = begin >> init
    for item in NOOP_STEPS:
        steps = steps >> item
    return steps >> done


@shared_task(name="bench.noop", ignore_result=True)
def noop_task() -> None:
    return None


WORKFLOWS = [
    WorkflowDefinition(
        name="bench_hundred_steps",
        module=__name__,
        function="bench_hundred_steps",
        is_task=True,
    )
]
