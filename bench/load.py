"""Throughput under load: many short processes on real workers, against raw Celery.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 python bench/load.py [--processes 1000]
        [--workers 2] [--pool prefork] [--modes celery,api,batch] [--batch-size 100] [--rabbitmq]

One Celery worker with W prefork processes (`--workers`, default 2: the machine's cores;
`--pool threads` for W threads in one process instead, as docs/deploying.md runs them)
consumes every queue while this script starts N processes (`--processes`, default 1,000)
of the `bench_ten_steps` workflow (init, 10 no-op steps, done: 12 step rows each) and
waits until all of them are completed. It does that once per mode, in the same run:

  celery  N raw Celery no-op tasks on the same broker and workers (each counts itself done
          with one Redis INCR): the baseline of what the broker and the pool cost;
  api     one `POST /api/processes/` per process, through Django's full request stack
          in this process (the DRF view behind the middleware, with a token; no socket);
  batch   `POST /api/processes/batch/` with --batch-size runs per request (same stack).

For each mode it prints the submit rate (and the server time of one start), the time from
the first submit until every run completed, steps/s and processes/s over that time, the
worker's CPU time per process (its pool processes' and its own, user + system: what the
engine costs a worker, less disturbed than wall time by the rest of a busy machine; the
database's share is not in it), and the p50/p95 start-to-finish latency of a process
(`started_at` to `finished_at`). Submitting and running overlap, as they do in
production: the submitting thread competes with the workers for the same cores. It fails
(exit status 1) when a run is lost or stuck: not completed within --timeout seconds, a
step row missing, or a lease left behind.

`--rabbitmq` uses amqp://guest:guest@127.0.0.1:5672// as the broker (`--broker-url` any
other); the INCR counter of the raw tasks stays on Redis (BENCH_COUNTER_URL, default
redis://127.0.0.1:6379/0, a key of its own per run). `--profile DIR` runs `py-spy record`
on the worker and its pool processes (idle time included) and writes their stacks there,
one file per process in py-spy's raw (collapsed) format.
Targets (issue 10) on 2 cores: >= 1,000 steps/s and >= 80 processes/s, a start <= 3 ms.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672//"
WORKFLOW = "bench_ten_steps"
USERNAME = "bench-load"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    parser.add_argument("--modes", default="celery,api,batch")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--rabbitmq", action="store_true")
    parser.add_argument("--broker-url", default="")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", default="", help="directory for py-spy stacks")
    return parser.parse_args()


ARGS = parse_args()
if ARGS.rabbitmq or ARGS.broker_url:
    os.environ["CELERY_BROKER_URL"] = ARGS.broker_url or RABBITMQ_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ["ORCHESTRATOR_WORKFLOW_MODULES"] = "bench.workflows"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.db.models import Count, Q  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.database import vacuum_analyze  # noqa: E402
from bench.workflows import LOAD_STEP_COUNT, counted_noop_task  # noqa: E402
from orchestrator import services  # noqa: E402
from orchestrator.models import (  # noqa: E402
    Process,
    ProcessStep,
    ProcessUserObjectPermission,
    WorkerPing,
)
from orchestrator.tasks import ping_task  # noqa: E402
from orchestrator.tokens import issue_token  # noqa: E402

STEPS_PER_PROCESS = LOAD_STEP_COUNT + 2  # init and done are steps too


def wait(predicate, timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            print(f"  timed out after {timeout:.0f}s waiting for {what}")
            return False
        time.sleep(0.1)
    return True


def start_worker() -> subprocess.Popen:
    command = [sys.executable, "-m", "celery", "-A", "orchestrator", "--quiet", "worker", "-Q",
               "core,user,internal", "--pool", ARGS.pool, "--concurrency", str(ARGS.workers),
               "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
               "--without-heartbeat", "-n", f"bench-load-{os.getpid()}@%h"]
    worker = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                              start_new_session=True)
    marker = f"load:{uuid.uuid4()}"
    ping_task.apply_async(args=[marker], queue="core")
    if not wait(lambda: WorkerPing.objects.filter(marker=marker).exists(), 120, "the worker"):
        worker.terminate()
        raise SystemExit("the worker did not start")
    return worker


def pool_pids(worker: subprocess.Popen) -> list[int]:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children")
    return [int(pid) for pid in children.read_text().split()] if children.exists() else []


def worker_cpu_seconds(worker: subprocess.Popen) -> float:
    """CPU time (user + system) the worker and its pool processes used so far: what the
    engine costs, less disturbed than wall time by whatever else the machine runs."""
    ticks = 0
    for pid in [worker.pid, *pool_pids(worker)]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def start_profilers(worker: subprocess.Popen, mode: str) -> list[subprocess.Popen]:
    if not ARGS.profile:
        return []
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    Path(ARGS.profile).mkdir(parents=True, exist_ok=True)
    return [
        subprocess.Popen([py_spy, "record", "--pid", str(pid), "--rate", "200", "--idle",
                          "--format", "raw", "--output", f"{ARGS.profile}/{mode}-{pid}.txt",
                          "--nonblocking"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for pid in [worker.pid, *pool_pids(worker)]
    ]


def stop_profilers(profilers: list[subprocess.Popen]) -> None:
    for profiler in profilers:
        profiler.send_signal(2)  # SIGINT: py-spy writes its stacks and exits
    for profiler in profilers:
        profiler.wait(timeout=60)


def bench_user():
    user, _ = get_user_model().objects.get_or_create(username=USERNAME)
    user.groups.add(Group.objects.get(name="operator"))
    return user


def api_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {issue_token(user)}")
    return client


def submit_api(client: APIClient) -> list[float]:
    """One POST per run; the server time of each (the whole request, in process)."""
    times = []
    for _ in range(ARGS.processes):
        started = time.perf_counter()
        response = client.post("/api/processes/", {"workflow": WORKFLOW}, format="json")
        times.append(time.perf_counter() - started)
        assert response.status_code == 201, response.content
    return times


def submit_batch(client: APIClient) -> list[float]:
    """One POST per --batch-size runs; the server time per run started."""
    times = []
    remaining = ARGS.processes
    while remaining:
        size = min(ARGS.batch_size, remaining)
        started = time.perf_counter()
        response = client.post("/api/processes/batch/",
                               {"runs": [{"workflow": WORKFLOW}] * size}, format="json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 201, response.content
        times.extend([elapsed / size] * size)
        remaining -= size
    return times


def run_processes(mode: str, client: APIClient, worker: subprocess.Popen) -> dict:
    """Start N runs through `mode` and wait for all of them; figures and problems."""
    Process.objects.filter(workflow__name=WORKFLOW).delete()
    vacuum_analyze(Process, ProcessStep, ProcessUserObjectPermission)  # not earlier runs' dead rows
    profilers = start_profilers(worker, mode)
    cpu = worker_cpu_seconds(worker)
    first = time.perf_counter()
    times = submit_api(client) if mode == "api" else submit_batch(client)
    submitted = time.perf_counter() - first
    runs = Process.objects.filter(workflow__name=WORKFLOW)
    finished = wait(lambda: not runs.exclude(status="completed").exists(), ARGS.timeout,
                    f"{mode} runs to complete")
    wall = time.perf_counter() - first
    cpu = worker_cpu_seconds(worker) - cpu
    stop_profilers(profilers)
    latencies = sorted(
        (finished_at - started_at).total_seconds()
        for started_at, finished_at in runs.filter(finished_at__isnull=False)
        .values_list("started_at", "finished_at")
    )
    counts = runs.aggregate(
        total=Count("pk"), completed=Count("pk", filter=Q(status="completed")),
        leased=Count("pk", filter=~Q(lease_owner="")),
    )
    steps = ProcessStep.objects.filter(process__workflow__name=WORKFLOW).count()
    problems = []
    if counts["total"] != ARGS.processes:
        problems.append(f"{counts['total']} runs stored, {ARGS.processes} started")
    if not finished or counts["completed"] != ARGS.processes:
        by_status = dict(runs.values_list("status").annotate(n=Count("pk")).order_by())
        problems.append(f"{ARGS.processes - counts['completed']} runs not completed: {by_status}")
    if steps != ARGS.processes * STEPS_PER_PROCESS:
        problems.append(f"{steps} step rows, {ARGS.processes * STEPS_PER_PROCESS} expected")
    if counts["leased"]:
        problems.append(f"{counts['leased']} runs still hold a lease")
    return {
        "submit_per_s": ARGS.processes / submitted,
        "start_ms": statistics.mean(times) * 1000,
        "wall": wall,
        "steps_per_s": steps / wall,
        "processes_per_s": counts["completed"] / wall,
        "cpu_ms": cpu * 1000 / ARGS.processes,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p95": statistics.quantiles(latencies, n=20)[-1] if len(latencies) > 1 else float("nan"),
        "problems": problems,
    }


def run_celery(worker: subprocess.Popen) -> dict:
    """N raw no-op tasks on the same broker and workers, each counting itself done."""
    import redis

    counter_url = os.environ.get("BENCH_COUNTER_URL", "")
    if not counter_url:
        broker = settings.CELERY_BROKER_URL
        counter_url = broker if broker.startswith("redis") else "redis://127.0.0.1:6379/0"
    counter, key = redis.Redis.from_url(counter_url), f"bench-load:{uuid.uuid4()}"
    profilers = start_profilers(worker, "celery")
    cpu = worker_cpu_seconds(worker)
    first = time.perf_counter()
    for _ in range(ARGS.processes):
        counted_noop_task.apply_async(args=[counter_url, key], queue="core")
    submitted = time.perf_counter() - first
    finished = wait(lambda: int(counter.get(key) or 0) >= ARGS.processes, ARGS.timeout,
                    "the raw Celery tasks")
    wall = time.perf_counter() - first
    cpu = worker_cpu_seconds(worker) - cpu
    stop_profilers(profilers)
    done = int(counter.get(key) or 0)
    counter.delete(key)
    return {
        "submit_per_s": ARGS.processes / submitted,
        "start_ms": submitted * 1000 / ARGS.processes,
        "wall": wall,
        "steps_per_s": done / wall,
        "processes_per_s": done / wall,
        "cpu_ms": cpu * 1000 / ARGS.processes,
        "p50": float("nan"),
        "p95": float("nan"),
        "problems": [] if finished else [f"{ARGS.processes - done} tasks never ran"],
    }


def main() -> None:
    modes = [mode.strip() for mode in ARGS.modes.split(",") if mode.strip()]
    unknown = set(modes) - {"celery", "api", "batch"}
    if unknown:
        raise SystemExit(f"unknown mode(s): {', '.join(sorted(unknown))}")
    call_command("migrate", verbosity=0)
    services.sync_workflows()
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = api_client(bench_user())
    worker = start_worker()
    results = {}
    try:
        for mode in modes:
            results[mode] = run_celery(worker) if mode == "celery" else run_processes(
                mode, client, worker
            )
    finally:
        os.killpg(worker.pid, 15)
        worker.wait(timeout=60)
    print(f"\ndatabase: {connection.vendor}; broker: {settings.CELERY_BROKER_URL.split('@')[-1]}; "
          f"{ARGS.processes} runs of {STEPS_PER_PROCESS} steps; 1 worker x {ARGS.workers} "
          f"{'prefork processes' if ARGS.pool == 'prefork' else 'threads'}; "
          f"load {os.getloadavg()[0]:.2f}")
    print(f"{'mode':<8}{'submit/s':>10}{'start ms':>10}{'wall s':>9}{'steps/s':>9}"
          f"{'procs/s':>9}{'cpu ms':>8}{'p50 s':>8}{'p95 s':>8}")
    for mode, r in results.items():
        print(f"{mode:<8}{r['submit_per_s']:>10.0f}{r['start_ms']:>10.2f}{r['wall']:>9.2f}"
              f"{r['steps_per_s']:>9.0f}{r['processes_per_s']:>9.1f}{r['cpu_ms']:>8.2f}"
              f"{r['p50']:>8.2f}{r['p95']:>8.2f}")
    if "celery" in results:
        print("(celery: one no-op task per 'process'; its steps/s and procs/s are tasks/s)")
    problems = [f"{mode}: {p}" for mode, r in results.items() for p in r["problems"]]
    for problem in problems:
        print("PROBLEM", problem)
    print("no run lost or stuck" if not problems else "RUNS LOST OR STUCK")
    Process.objects.filter(workflow__name=WORKFLOW).delete()
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
