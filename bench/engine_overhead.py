"""Engine overhead per step, as ratios against baselines measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 python bench/engine_overhead.py

Measures, on the configured database and broker:
  engine  a 100-step no-op workflow run by a real worker (time from the first step's
          start to the last step's commit, per step), median of several runs;
  (a)     100 one-row INSERT + COMMIT transactions in a loop (Django ORM), per row;
  (p)     the same loop through psycopg itself (no ORM), per row, on PostgreSQL;
  (b)     a Celery chain of 100 no-op tasks on the same broker, per task;
and counts the SQL statements the runner issues per step. Targets: engine <= 2.0x (a)
(issue 3) and <= 2.0x (p) (issue 10), and at least 2x faster than (b). Django logs BEGIN
and COMMIT with an atomic block whether or not the driver sent them: the statement count
leaves them out (a step that runs no SQL is one statement, BEGIN and COMMIT included).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ["ORCHESTRATOR_WORKFLOW_MODULES"] = "bench.workflows"

import django  # noqa: E402

django.setup()

from celery import chain  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.baselines import psycopg_commit_ms_per_row  # noqa: E402
from bench.workflows import STEP_COUNT, noop_task  # noqa: E402
from orchestrator import services  # noqa: E402
from orchestrator.models import Process, ProcessStep, WorkerPing  # noqa: E402
from orchestrator.runner import run_process  # noqa: E402
from orchestrator.tasks import ping_task  # noqa: E402

RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def wait(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out: is the worker running?")
        time.sleep(0.005)


def engine_ms_per_step() -> float:
    process = services.start_process(workflow_name="bench_hundred_steps", input_pages=[])
    wait(lambda: Process.objects.filter(pk=process.pk, status="completed").exists())
    steps = ProcessStep.objects.filter(process=process).order_by("id")
    first, last = steps.first(), steps.last()
    return (last.completed_at - first.started_at).total_seconds() * 1000 / steps.count()


def raw_commit_ms_per_row() -> float:
    start = time.perf_counter()
    for index in range(STEP_COUNT):
        with transaction.atomic():
            WorkerPing.objects.create(marker=f"raw:{index}")
    return (time.perf_counter() - start) * 1000 / STEP_COUNT


def celery_chain_ms_per_task() -> float:
    marker = f"chain:{uuid.uuid4()}"
    start = time.perf_counter()
    chain(*[noop_task.si() for _ in range(STEP_COUNT - 1)], ping_task.si(marker)).apply_async()
    wait(lambda: WorkerPing.objects.filter(marker=marker).exists())
    return (time.perf_counter() - start) * 1000 / STEP_COUNT


def statements_per_step() -> float:
    """SQL statements of an in-process run, per step (BEGIN/COMMIT not counted)."""
    process = services.start_process(workflow_name="bench_hundred_steps", input_pages=[])
    with CaptureQueriesContext(connection) as queries:
        run_process(str(process.pk))
    sent = [query for query in queries.captured_queries
            if query["sql"] not in ("BEGIN", "COMMIT", "ROLLBACK")]
    return len(sent) / (STEP_COUNT + 2)


def main() -> None:
    call_command("migrate", verbosity=0)
    services.sync_workflows()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "orchestrator", "worker", "-Q",
         "core,user,internal", "--pool", "solo", "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--include",
         "bench.workflows", "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    try:
        engine_ms_per_step()  # warm-up: worker start, imports, connections
        celery_chain_ms_per_task()
        engine, raw, psycopg_raw, celery_chain = [], [], [], []
        for _ in range(RUNS):  # interleaved, so a noisy neighbour hits them all alike
            engine.append(engine_ms_per_step())
            raw.append(raw_commit_ms_per_row())
            if connection.vendor == "postgresql":
                psycopg_raw.append(psycopg_commit_ms_per_row(STEP_COUNT))
            celery_chain.append(celery_chain_ms_per_task())
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    engine, raw, celery_chain = (statistics.median(values)
                                 for values in (engine, raw, celery_chain))
    statements = statements_per_step()
    print(f"database: {connection.vendor}; broker: {os.environ.get('CELERY_BROKER_URL', '')}")
    print(f"engine step (real worker)     {engine:8.3f} ms/step  (median of {RUNS})")
    print(f"(a) INSERT+COMMIT loop        {raw:8.3f} ms/row")
    if psycopg_raw:
        psycopg_ms = statistics.median(psycopg_raw)
        print(f"(p) psycopg INSERT+COMMIT     {psycopg_ms:8.3f} ms/row")
    print(f"(b) Celery chain of no-ops    {celery_chain:8.3f} ms/task")
    print(f"engine / (a)                  {engine / raw:8.2f}x   (target <= 2.0x)")
    if psycopg_raw:
        print(f"engine / (p)                  {engine / psycopg_ms:8.2f}x   (target <= 2.0x)")
    print(f"(b) / engine                  {celery_chain / engine:8.2f}x   (target >= 2.0x)")
    print(f"SQL statements per step       {statements:8.2f}")


if __name__ == "__main__":
    main()
