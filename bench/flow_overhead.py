"""Flow overhead per task run, as ratios against a baseline measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 python bench/flow_overhead.py

Measures, on the configured database and broker (PostgreSQL is the point):
  sequential  a flow of 100 no-op tasks called one after the other, run by a real worker:
              from the flow's Start row to its Done row, per task;
  submitted   a flow of 100 no-op tasks `.submit()`ed at once (the flow's thread pool);
  writing     a flow of 100 sequential tasks that each INSERT a row (ORM): the task's
              transaction holds its own write and its row (BEGIN, INSERT, row, COMMIT);
  logging     a flow of 100 sequential tasks that each log one INFO line: the task's row,
              then its run log line (one INSERT after the task's transaction);
  (a)         100 one-row INSERT + COMMIT transactions through psycopg itself (no ORM), per row;
and counts the SQL statements a task run costs. Target (issue 9): each flow <= 2.0x (a).
A no-op task runs no SQL, so its row is written on its own (one autocommit statement, one
round trip); `writing` shows the cost of a task that has a transaction to share.
Medians of BENCH_RUNS runs (default 5). Prefect 3.9 took 6.3-9.5 ms per task on machines of
this kind.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ["ORCHESTRATOR_WORKFLOW_MODULES"] = "orchestrator.builtin_workflows,bench.flows"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.baselines import psycopg_commit_ms_per_row  # noqa: E402
from bench.flows import TASK_COUNT  # noqa: E402
from orchestrator import services  # noqa: E402
from orchestrator.models import Process, ProcessStep, WorkerPing  # noqa: E402
from orchestrator.runner import run_process  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def wait(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out: is the worker running?")
        time.sleep(0.05)  # the timings come from the rows: polling often only adds load


def flow_ms_per_task(name: str) -> float:
    process = services.start_process(workflow_name=name, input_pages=[])
    wait(lambda: Process.objects.filter(pk=process.pk, status__in=("completed", "failed"))
         .exists())
    process.refresh_from_db()
    if process.status != "completed":
        raise SystemExit(f"{name} failed: {process.failed_reason}")
    rows = ProcessStep.objects.filter(process=process)
    start, done = rows.get(name="Start"), rows.get(name="Done")
    return (done.completed_at - start.completed_at).total_seconds() * 1000 / TASK_COUNT


def statements_per_task() -> float:
    """SQL statements of an in-process run of the sequential flow, per task. Django logs
    BEGIN and COMMIT when an atomic block opens and closes, whether or not the driver sent
    one (psycopg begins with the first statement): they are not counted."""
    process = services.start_process(workflow_name="bench-sequential-tasks", input_pages=[])
    with CaptureQueriesContext(connection) as queries:
        run_process(str(process.pk))
    sent = [query for query in queries.captured_queries
            if query["sql"] not in ("BEGIN", "COMMIT", "ROLLBACK")]
    return len(sent) / TASK_COUNT


def main() -> None:
    if connection.vendor != "postgresql":
        raise SystemExit("run it on PostgreSQL: set DATABASE_URL=postgres://...")
    call_command("migrate", verbosity=0)
    services.sync_workflows()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "orchestrator", "worker", "-Q",
         "core,user,internal", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-n", f"bench-flows-{os.getpid()}@%h"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        flow_ms_per_task("bench-sequential-tasks")  # warm-up: worker start, imports
        flow_ms_per_task("bench-submitted-tasks")
        sequential, submitted, writing, logging_, raw = [], [], [], [], []
        for _ in range(RUNS):  # interleaved, so a noisy neighbour hits them all alike
            raw.append(psycopg_commit_ms_per_row(TASK_COUNT))
            sequential.append(flow_ms_per_task("bench-sequential-tasks"))
            submitted.append(flow_ms_per_task("bench-submitted-tasks"))
            writing.append(flow_ms_per_task("bench-writing-tasks"))
            logging_.append(flow_ms_per_task("bench-logging-tasks"))
        WorkerPing.objects.filter(marker__startswith="bench-task:").delete()
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    raw_ms, sequential_ms, submitted_ms, writing_ms, logging_ms = (
        statistics.median(values) for values in (raw, sequential, submitted, writing, logging_))
    statements = statements_per_task()
    print(f"database: {connection.vendor}; broker: {os.environ.get('CELERY_BROKER_URL', '')}")
    print(f"(a) psycopg INSERT+COMMIT loop   {raw_ms:8.3f} ms/row   (median of {RUNS})")
    print(f"flow, 100 sequential tasks       {sequential_ms:8.3f} ms/task  "
          f"{sequential_ms / raw_ms:5.2f}x (a)   (target <= 2.0x)")
    print(f"flow, 100 submitted tasks        {submitted_ms:8.3f} ms/task  "
          f"{submitted_ms / raw_ms:5.2f}x (a)   (target <= 2.0x)")
    print(f"flow, 100 tasks writing a row    {writing_ms:8.3f} ms/task  "
          f"{writing_ms / raw_ms:5.2f}x (a)")
    print(f"flow, 100 tasks logging a line   {logging_ms:8.3f} ms/task  "
          f"{logging_ms / raw_ms:5.2f}x (a)")
    print(f"SQL statements per no-op task    {statements:8.2f}")


if __name__ == "__main__":
    main()
