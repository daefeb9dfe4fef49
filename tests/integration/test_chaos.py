"""Chaos (DESIGN §4.3): many processes on real workers while workers are killed with
SIGKILL, their database connections are terminated and the broker is restarted.

The processes are, by thirds, step lists whose steps write (`wf_counted`), durable flows
whose task runs write (`flow-counted`), and step lists whose steps run no SQL (`wf_quiet`,
the engine's one-statement commit), 20 steps or task runs each. Every process completes,
every step's or task run's database effect happens exactly once (each writes one marker row
keyed by process and index; the rows are counted), every step or task run is logged as
succeeded once, and a process whose worker died does not stay `running` on its expired
lease for long.

The short form runs in CI on PostgreSQL + Redis (60 processes of 20 steps, about a
minute). The long form runs 300 processes with more kills: `CHAOS_LONG=1`. Run with `-s`
to see the figures; `CHAOS_SEED=<n>` makes the same random choices again.

The test owns its broker: a redis-server of its own on a free port, without persistence,
so its restart loses every message in it (the worst case) and disturbs nobody else. The
recovery sweep is sent every second through that broker, as celery-beat would send it.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kombu.pools
import pytest
import redis
from django.db import connection
from django.db.models import Count, Max, Q
from django.utils import timezone

from orchestrator import services
from orchestrator.celery import app
from orchestrator.models import RUNNABLE_STATUSES, Process, ProcessStep, WorkerPing
from orchestrator.tasks import recovery_sweep_task
from tests.conftest import Worker, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

STEPS = 20  # of wf_counted and wf_quiet, and the task runs of each flow-counted run
KINDS = ("wf_counted", "flow-counted", "wf_quiet")  # in turn; the last one writes no effect
LEASE_SECONDS = 3
REQUEUE_AFTER_SECONDS = 5
SWEEP_EVERY = 1.0
# An expired lease must be taken back well within this (the sweep runs every second, but
# waits for a free worker slot, and right after the broker restart for the workers).
ORPHAN_LIMIT_SECONDS = 30


@dataclass(frozen=True)
class Plan:
    processes: int
    step_sleep: float
    workers: int  # kept running: each one killed is replaced at once
    kill_every: float  # seconds between two SIGKILLs
    terminate_at: tuple[float, ...]  # share of processes ended at each pg_terminate_backend
    restart_broker_at: float  # share of processes ended
    min_kills: int
    timeout: float


SHORT = Plan(processes=60, step_sleep=0.1, workers=3, kill_every=3.0,
             terminate_at=(0.1, 0.4, 0.7), restart_broker_at=0.25, min_kills=3, timeout=150)
LONG = Plan(processes=300, step_sleep=0.15, workers=3, kill_every=2.5,
            terminate_at=(0.05, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9), restart_broker_at=0.35,
            min_kills=30, timeout=1200)


PLAN = LONG if os.environ.get("CHAOS_LONG") == "1" else SHORT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Broker:
    """A redis-server of the test's own, without persistence."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.directory = directory
        self.proc: subprocess.Popen | None = None
        self.restarts = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, start_new_session=True,
        )
        wait_for(self.answers, timeout=15, interval=0.05)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_timeout=1).ping())
        except redis.RedisError:
            return False

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        """SIGKILL and start again on the same port: every queued message is lost."""
        self.kill()
        self.start()
        self.restarts += 1


def publish_to(url: str | None) -> None:
    """Point what this process sends (start_process, the sweep) at `url` (None: back to
    CELERY_BROKER_URL)."""
    if app._pool is not None:
        app._pool.force_close_all()
    kombu.pools.reset()  # else kombu's global producer pool of the URL stays closed
    app.conf.broker_write_url = url
    app._pool = None
    app.amqp._producer_pool = None


@pytest.fixture
def broker(tmp_path) -> Iterator[Broker]:
    if shutil.which("redis-server") is None:
        pytest.skip("the chaos test starts a redis-server of its own; none is installed")
    own = Broker(tmp_path)
    own.start()
    publish_to(own.url)
    yield own
    publish_to(None)
    own.kill()


def pool_children(worker: Worker) -> list[int]:
    """The prefork pool processes of a worker (Linux)."""
    path = Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children")
    with contextlib.suppress(OSError):
        return [int(pid) for pid in path.read_text().split()]
    return []


@dataclass
class Figures:
    processes: int
    seed: int
    seconds: float = 0.0
    worker_kills: int = 0
    child_kills: int = 0
    workers_started: int = 0
    workers_exited: int = 0  # on their own (not killed by the test)
    terminations: int = 0
    connections_terminated: int = 0
    broker_restarts: int = 0
    sweeps_sent: int = 0
    sweeps_unsent: int = 0
    completed: int = 0
    max_deliveries: int = 0
    longest_orphan: float = 0.0  # seconds a process stayed `running` on an expired lease
    duplicate_effects: dict[str, int] = field(default_factory=dict)
    missing_effects: int = 0

    @property
    def kills(self) -> int:
        return self.worker_kills + self.child_kills

    def __str__(self) -> str:
        return (
            f"chaos (seed {self.seed}): {self.processes} processes x {STEPS} steps in "
            f"{self.seconds:.1f} s; SIGKILLs {self.kills} ({self.worker_kills} workers, "
            f"{self.child_kills} pool processes; {self.workers_started} workers started, "
            f"{self.workers_exited} exited on their own); pg_terminate_backend "
            f"{self.terminations} times ({self.connections_terminated} connections); broker "
            f"restarts {self.broker_restarts}; sweeps sent {self.sweeps_sent} "
            f"({self.sweeps_unsent} could not be sent); completed {self.completed}/"
            f"{self.processes}; max deliveries of a step {self.max_deliveries}; longest on "
            f"an expired lease {self.longest_orphan:.1f} s; duplicate effects "
            f"{len(self.duplicate_effects)}; missing effects {self.missing_effects}"
        )


class Chaos:
    """Keeps `plan.workers` workers running while it kills them, terminates their database
    connections and restarts the broker; sends the sweep; watches the leases."""

    def __init__(self, plan: Plan, broker: Broker, env: dict[str, str], ids: list[str],
                 seed: int) -> None:
        self.plan, self.broker, self.ids = plan, broker, ids
        self.env = {
            **env,
            "CELERY_BROKER_URL": broker.url,
            "ORCHESTRATOR_LEASE_SECONDS": str(LEASE_SECONDS),
            "ORCHESTRATOR_REQUEUE_AFTER_SECONDS": str(REQUEUE_AFTER_SECONDS),
        }
        self.rng = random.Random(seed)
        self.figures = Figures(processes=len(ids), seed=seed)
        self.workers: list[Worker] = []
        self.orphans: dict[str, float] = {}  # process id -> when first seen on an expired lease

    def start_worker(self) -> None:
        # Both pools production uses: prefork (pool processes the test may kill alone)
        # and threads.
        if self.figures.workers_started % 2:
            worker = Worker(self.env, pool="threads", concurrency=4)
        else:
            worker = Worker(self.env, pool="prefork", concurrency=2)
        self.workers.append(worker.start())
        self.figures.workers_started += 1

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()

    def keep_workers(self) -> None:
        for worker in list(self.workers):
            if worker.proc.poll() is not None:
                self.workers.remove(worker)
                self.figures.workers_exited += 1
        while len(self.workers) < self.plan.workers:
            self.start_worker()

    def kill_one(self) -> None:
        worker = self.rng.choice(self.workers)
        children = pool_children(worker) if worker.pool == "prefork" else []
        if children and self.rng.random() < 0.3:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.rng.choice(children), signal.SIGKILL)
            self.figures.child_kills += 1
            return
        worker.kill()
        self.workers.remove(worker)
        self.figures.worker_kills += 1
        self.start_worker()

    def terminate_connections(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            self.figures.connections_terminated += cursor.fetchone()[0]
        self.figures.terminations += 1

    def send_sweep(self) -> None:
        try:
            recovery_sweep_task.apply_async(queue="internal")
            self.figures.sweeps_sent += 1
        except Exception:  # noqa: BLE001 - the broker is down: the next one goes through
            self.figures.sweeps_unsent += 1

    def observe(self) -> int:
        """Processes no worker will pick up any more (completed, or failed...); notes the
        deliveries and the expired leases seen."""
        now = timezone.now()
        mine = Process.objects.filter(pk__in=self.ids)
        seen = mine.aggregate(
            completed=Count("pk", filter=Q(status="completed")),
            ended=Count("pk", filter=~Q(status__in=RUNNABLE_STATUSES)),
            deliveries=Max("delivery_count"),
        )
        self.figures.completed = seen["completed"]
        self.figures.max_deliveries = max(self.figures.max_deliveries, seen["deliveries"] or 0)
        expired = set(
            mine.filter(status="running", lease_expires_at__lt=now)
            .exclude(lease_owner="")
            .values_list("pk", flat=True)
        )
        clock = time.monotonic()
        for pk in list(self.orphans):
            if pk not in expired:
                del self.orphans[pk]
        for pk in expired:
            first_seen = self.orphans.setdefault(pk, clock)
            self.figures.longest_orphan = max(self.figures.longest_orphan, clock - first_seen)
        return seen["ended"]

    def run(self) -> None:
        plan, started = self.plan, time.monotonic()
        terminations = list(plan.terminate_at)
        next_kill = started + plan.kill_every
        next_sweep = started
        while True:
            self.keep_workers()
            ended = self.observe()
            share = ended / len(self.ids)
            if ended == len(self.ids):
                break
            assert time.monotonic() - started < plan.timeout, (
                f"not every process ended within {plan.timeout} s: {self.figures}"
            )
            clock = time.monotonic()
            if clock >= next_kill:
                self.kill_one()
                next_kill = clock + plan.kill_every
            if terminations and share >= terminations[0]:
                terminations.pop(0)
                self.terminate_connections()
            if not self.broker.restarts and share >= plan.restart_broker_at:
                self.broker.restart()
                self.figures.broker_restarts = self.broker.restarts
            if clock >= next_sweep:
                self.send_sweep()
                next_sweep = clock + SWEEP_EVERY
            time.sleep(0.2)
        self.figures.seconds = time.monotonic() - started


def count_effects(figures: Figures, ids: list[str]) -> Counter:
    """Notes the marker rows written more than once and those never written (each step or
    task run of wf_counted and flow-counted writes one); returns how often each step or task
    run was logged as succeeded."""
    writers = [pk for index, pk in enumerate(ids) if KINDS[index % len(KINDS)] != "wf_quiet"]
    expected = {f"{pk}:{index}" for pk in writers for index in range(STEPS)}
    written = Counter(WorkerPing.objects.values_list("marker", flat=True))
    figures.duplicate_effects = {marker: n for marker, n in written.items() if n > 1}
    figures.missing_effects = len(expected - set(written))
    work = (Q(name__startswith="Step ") | Q(name__startswith="Quiet ")
            | (~Q(task_key="") & Q(replayed=False)))
    return Counter(
        ProcessStep.objects.filter(process__in=ids, status="success").filter(work)
        .values_list("process", "name", "task_key")
    )


@pytest.mark.timeout(PLAN.timeout + 120)
def test_chaos_every_process_completes_and_every_effect_happens_once(synced, worker_env,
                                                                     broker):
    if connection.vendor != "postgresql":
        pytest.skip("terminating the workers' connections needs PostgreSQL")
    plan = PLAN
    seed = int(os.environ.get("CHAOS_SEED") or random.SystemRandom().randrange(10**6))
    pages = {"flow-counted": {"tasks": STEPS, "sleep": plan.step_sleep}}
    ids = [
        str(services.start_process(workflow_name=kind, input_pages=[
            pages.get(kind, {"sleep": plan.step_sleep})]).pk)
        for kind in (KINDS[index % len(KINDS)] for index in range(plan.processes))
    ]
    chaos = Chaos(plan, broker, worker_env, ids, seed)
    try:
        chaos.run()
    finally:
        chaos.stop()
        successes = count_effects(chaos.figures, ids)
        print(chaos.figures)
    figures = chaos.figures
    unfinished = Process.objects.filter(pk__in=ids).exclude(status="completed")
    assert not unfinished.exists(), [
        (row["status"], row["failed_reason"][:300])
        for row in unfinished.values("status", "failed_reason")[:10]
    ]
    assert figures.duplicate_effects == {}, f"effects repeated: {figures}"
    assert figures.missing_effects == 0, f"effects missing: {figures}"
    assert set(successes.values()) == {1}, [key for key, n in successes.items() if n > 1][:10]
    assert len(successes) == len(ids) * STEPS
    assert not Process.objects.filter(pk__in=ids).exclude(lease_owner="").exists()
    assert figures.longest_orphan < ORPHAN_LIMIT_SECONDS, f"a dead worker's run waited: {figures}"
    # The chaos happened while the processes ran (else this test proved nothing).
    assert figures.kills >= plan.min_kills, figures
    assert figures.terminations == len(plan.terminate_at), figures
    assert figures.connections_terminated > 0, figures
    assert figures.broker_restarts == 1, figures
