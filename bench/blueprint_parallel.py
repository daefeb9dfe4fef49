"""Blueprint executions: parallel levels on real workers, and planning at scale.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench \\
    CELERY_BROKER_URL=redis://127.0.0.1:6379/7 python bench/blueprint_parallel.py

1. A blueprint of 200 templates in 10 levels of 20 (each template waits for two of the
   level before it), each step sleeping 0.2 s, executed by 4 worker processes (thread pools
   of BENCH_THREADS each, so a level's 20 steps can run at once): the wall time from
   Execute to done, against the ideal critical path (10 × 0.2 s), and against 10 × the
   sleeping step's own duration as the step log recorded it in the same run (on a busy
   machine a 0.2 s sleep takes longer). Target (issue 8): wall time <= 1.3 × the ideal.
   It also prints the CPU time the whole machine was busy during the run (workers,
   PostgreSQL, broker): divided by the cores, a floor under the wall time. When that
   floor is above the critical path the run is CPU-bound, and only less work per step
   (not more parallelism) brings it down; run it on a quiet machine. And the run's own
   CPU time: the workers' and the PostgreSQL backends' of this database (the broker's
   left out), which other work on a shared machine does not inflate. Before each run it
   vacuums and analyzes the database, then executes a small blueprint as wide as the
   workers' threads, unmeasured (`measured_run` says why).
2. Validating and planning a blueprint of 2,000 templates (wiring like the above): the
   validator and planner in memory, the plan read from the database, the checks of a save
   (`validate_blueprint`), and a whole save (which also writes the 2,000 members and 3,960 wiring
   rows). Target: planning and validating under 1 s.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")
os.environ["ORCHESTRATOR_WORKFLOW_MODULES"] = "bench.blueprint_workflows"

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.database import vacuum_analyze  # noqa: E402
from blueprints import selectors, services  # noqa: E402
from blueprints.models import Blueprint, Execution, Template  # noqa: E402
from orchestrator import services as engine  # noqa: E402
from orchestrator.models import ProcessStep, Workflow  # noqa: E402

LEVELS, WIDTH, SLEEP = 10, 20, 0.2
WORKERS = int(os.environ.get("BENCH_WORKERS", "4"))
THREADS = int(os.environ.get("BENCH_THREADS", "6"))
RUNS = int(os.environ.get("BENCH_RUNS", "1"))
VARIABLES = [{"name": "name"}, {"name": "sleep", "default": SLEEP},
             {"name": "upstream_a"}, {"name": "upstream_b"}]


def names(levels: int, width: int, prefix: str) -> list[list[str]]:
    return [[f"{prefix}{level}-{index}" for index in range(width)] for level in range(levels)]


def wiring(grid: list[list[str]]) -> list[dict]:
    """Each template waits for two of the level before it."""
    rules = []
    for level in range(1, len(grid)):
        width = len(grid[level])
        for index, target in enumerate(grid[level]):
            for variable, source in (("upstream_a", grid[level - 1][index]),
                                     ("upstream_b", grid[level - 1][(index + 1) % width])):
                rules.append({"source_template": source, "source_output": "out",
                              "target_template": target, "target_variable": variable})
    return rules


def make_blueprint(name: str, levels: int, width: int) -> Blueprint:
    """Templates made in bulk (the benchmark's setup), the blueprint through the service."""
    grid = names(levels, width, f"{name}:")
    workflow = Workflow.objects.get(name="bench_sleep")
    Template.objects.bulk_create(
        [Template(name=template, workflow=workflow, variables=VARIABLES,
                  outputs=[{"name": "out", "type": "string"}])
         for row in grid for template in row],
        ignore_conflicts=True,
    )
    defaults = {template: {"name": template} for row in grid for template in row}
    existing = Blueprint.objects.filter(name=name).first()
    return services.save_blueprint(blueprint=existing, data={
        "name": name, "templates": [t for row in grid for t in row],
        "default_variables": defaults, "wiring": wiring(grid)})


def wait(predicate, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit("benchmark timed out: are the workers running?")
        time.sleep(0.01)


def step_seconds(execution: Execution) -> float:
    """Median time the template's own work took (the sleeping step, as the step log
    recorded it): on a busy machine a 0.2 s sleep takes longer, and so does the ideal."""
    durations = [
        (row.completed_at - row.started_at).total_seconds()
        for row in ProcessStep.objects.filter(
            process__execution_steps__execution=execution, name="Provision (sleep)"
        )
    ]
    return statistics.median(durations)


def busy_cpu_seconds() -> float:
    """CPU time the whole machine spent busy so far (Linux /proc/stat; 0 elsewhere): the
    workers, PostgreSQL, the broker and this process together."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(value) for value in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    idle = fields[3] + fields[4]  # idle and iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """CPU time (user + system) each of `pids` used so far (Linux /proc; gone ones left out)."""
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def backend_pids() -> list[int]:
    """The PostgreSQL backends serving this database (the workers', and this process's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
        return [pid for (pid,) in cursor.fetchall()]


def used_since(before: dict[int, float], pids: list[int]) -> float:
    """CPU seconds `pids` used since `before` (a process not in it counts from zero)."""
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in cpu_seconds(pids).items())


def measured_run(blueprint: Blueprint, warm_up: Blueprint,
                 workers: list[subprocess.Popen]) -> Run:
    """One run, on a database as autovacuum keeps it and on warm sessions: vacuum and
    analyze, then execute `warm_up` unmeasured, then `blueprint`. The vacuum makes every
    session plan its prepared statements again; a real system's sessions do that once
    after an autovacuum, spread over their work, not all at once at an Execute (measured
    right after the vacuum, the run's database backends spent about a sixth more CPU).
    The warm-up is as wide as the workers' threads, so each of them takes a run of it and
    opens and re-plans its connection there."""
    vacuum_analyze()
    execute(warm_up, workers)
    return execute(blueprint, workers)


def execute(blueprint: Blueprint, workers: list[subprocess.Popen]) -> Run:
    """Wall time, the median sleeping step, the machine's busy CPU seconds and the run's
    own (its workers', its database backends') of one execution."""
    execution = services.create_execution(blueprint=blueprint)
    worker_pids = [worker.pid for worker in workers]
    before = cpu_seconds(worker_pids + backend_pids())
    start, busy = time.perf_counter(), busy_cpu_seconds()
    services.execute_execution(execution=execution)
    wait(lambda: Execution.objects.filter(pk=execution.pk, status__in=("done", "error")).exists())
    wall, busy = time.perf_counter() - start, busy_cpu_seconds() - busy
    workers_cpu, database_cpu = used_since(before, worker_pids), used_since(before, backend_pids())
    execution.refresh_from_db()
    if execution.status != "done":
        raise SystemExit(f"the execution failed: {execution.error_message}")
    return Run(wall, step_seconds(execution), busy, workers_cpu, database_cpu)


@dataclass(frozen=True)
class Run:
    wall: float
    step: float
    busy: float  # the whole machine's busy CPU seconds
    workers: float  # the workers' CPU seconds
    database: float  # the CPU seconds of the PostgreSQL backends of this database


def start_workers() -> list[subprocess.Popen]:
    command = [sys.executable, "-m", "celery", "-A", "orchestrator", "worker", "-Q",
               "core,user,internal", "--pool", "threads", "--concurrency", str(THREADS),
               "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
               "--without-heartbeat"]
    return [
        subprocess.Popen([*command, "-n", f"bench-{os.getpid()}-{index}@%h"], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
        for index in range(WORKERS)
    ]


def planning_seconds() -> dict[str, float]:
    blueprint = make_blueprint("plan-2000", 100, 20)
    parts = selectors.blueprint_parts(
        selectors.blueprint_with_relations(Blueprint.objects.filter(pk=blueprint.pk)).get()
    )
    timings: dict[str, float] = {}
    start = time.perf_counter()
    planned = selectors.plan_parts(parts)  # validate, order, level, resolve every variable
    timings["validate + plan + resolve, in memory"] = time.perf_counter() - start
    assert not planned.problems and len(planned.levels) == 100
    start = time.perf_counter()
    selectors.blueprint_plan(Blueprint.objects.get(pk=blueprint.pk))
    timings["blueprint_plan from the database"] = time.perf_counter() - start
    data = services.blueprint_data(blueprint)
    start = time.perf_counter()
    services.validate_blueprint(blueprint=blueprint, data=data)
    timings["validating a save (nothing written)"] = time.perf_counter() - start
    start = time.perf_counter()
    services.save_blueprint(blueprint=blueprint, data=data)
    timings["a validated save (writes 6,000 rows)"] = time.perf_counter() - start
    return timings


def main() -> None:
    call_command("migrate", verbosity=0)
    engine.sync_workflows()
    print("planning and validating 2,000 templates (target < 1 s):")
    for what, seconds in planning_seconds().items():
        print(f"  {what:<40} {seconds:7.3f} s")
    blueprint = make_blueprint("parallel-200", LEVELS, WIDTH)
    workers = start_workers()
    try:
        warm_up = make_blueprint("warm-up", 2, WORKERS * THREADS)
        results = [measured_run(blueprint, warm_up, workers) for _ in range(RUNS)]
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=60)
    wall = statistics.median(r.wall for r in results)
    step = statistics.median(r.step for r in results)
    busy = statistics.median(r.busy for r in results)
    workers_cpu = statistics.median(r.workers for r in results)
    database_cpu = statistics.median(r.database for r in results)
    steps = LEVELS * WIDTH
    cores = os.cpu_count() or 1
    ideal = LEVELS * SLEEP
    measured_path = LEVELS * step
    print(f"{LEVELS * WIDTH} templates in {LEVELS} levels, {SLEEP} s each, {WORKERS} workers "
          f"x {THREADS} threads ({RUNS} run(s))")
    print(f"  wall time, Execute to done            {wall:7.3f} s")
    print(f"  ideal critical path {LEVELS} x {SLEEP} s          {ideal:7.3f} s  "
          f"ratio {wall / ideal:5.2f}x (target <= 1.3x)")
    print(f"  10 x the measured sleeping step       {measured_path:7.3f} s  "
          f"ratio {wall / measured_path:5.2f}x  (the step took {step:.3f} s)")
    print(f"  machine CPU busy during the run       {busy:7.3f} s  "
          f"= {1000 * busy / (LEVELS * WIDTH):.0f} ms per template step; on {cores} cores the "
          f"wall time cannot be below {busy / cores:.3f} s")
    print(f"  the run's own CPU: workers             {workers_cpu:7.3f} s  "
          f"= {1000 * workers_cpu / steps:.0f} ms per template step")
    print(f"  the run's own CPU: database backends   {database_cpu:7.3f} s  "
          f"= {1000 * database_cpu / steps:.0f} ms per template step (these two leave out "
          f"the broker and whatever else the machine runs)")

if __name__ == "__main__":
    main()
