"""The flow benchmark's flows: a hundred no-op tasks, called one by one or submitted, a
hundred tasks that each insert a row (so each is a transaction of its own), and a hundred
that each log a line (kept in the run log)."""

import logging

from orchestrator.flows import flow, task
from orchestrator.models import WorkerPing

TASK_COUNT = 100
logger = logging.getLogger("bench.flows")


@task
def noop() -> None:
    return None


@task
def insert_row(index: int) -> None:
    WorkerPing.objects.create(marker=f"bench-task:{index}")


@task
def log_line(index: int) -> None:
    logger.info("task %s ran", index)


@flow(name="bench-sequential-tasks")
def sequential_tasks() -> None:
    for _ in range(TASK_COUNT):
        noop()


@flow(name="bench-submitted-tasks")
def submitted_tasks() -> None:
    for future in [noop.submit() for _ in range(TASK_COUNT)]:
        future.wait()


@flow(name="bench-writing-tasks")
def writing_tasks() -> None:
    for index in range(TASK_COUNT):
        insert_row(index)


@flow(name="bench-logging-tasks")
def logging_tasks() -> None:
    for index in range(TASK_COUNT):
        log_line(index)


WORKFLOWS = [sequential_tasks.to_definition(is_task=True),
             submitted_tasks.to_definition(is_task=True),
             writing_tasks.to_definition(is_task=True),
             logging_tasks.to_definition(is_task=True)]
