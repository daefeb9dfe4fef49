"""Named locks across real workers (two worker processes on the real broker): one holder of
a name at a time over 50 runs, different names at once, and a holder killed with SIGKILL
frees its lock. PostgreSQL (advisory locks); SQLite's one writer serialises steps anyway."""

from __future__ import annotations

import itertools
import subprocess
import sys

import pytest
from django.db import connection

from orchestrator import services
from orchestrator.lock import registry
from orchestrator.models import Process
from tests.conftest import ROOT, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
]


def start_locked(lock_name: str, hold: float) -> Process:
    return services.start_process(
        workflow_name="wf_named_lock", input_pages=[{"lock_name": lock_name, "hold": hold}]
    )


def finished(runs: list[Process]) -> list[dict]:
    wait_for(lambda: Process.objects.filter(pk__in=[r.pk for r in runs],
                                            status="completed").count() == len(runs),
             timeout=120, interval=0.1)
    return [Process.objects.get(pk=run.pk).state for run in runs]


def test_two_workers_never_overlap_inside_one_name_and_do_for_two(synced, start_worker):
    start_worker(pool="threads", concurrency=3)
    start_worker(pool="threads", concurrency=3)
    runs = [start_locked("shared", 0.02) for _ in range(50)]
    states = sorted(finished(runs), key=lambda state: state["entered"])
    for before, after in itertools.pairwise(states):
        assert before["left"] <= after["entered"], (before, after)

    apart = [start_locked("name-a", 1.0), start_locked("name-b", 1.0)]
    first, second = finished(apart)
    assert first["entered"] < second["left"] and second["entered"] < first["left"]


def test_a_holder_killed_with_sigkill_frees_its_lock(synced, worker_env):
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import django, time; django.setup()\n"
            "from orchestrator.lock import registry\n"
            "registry.get(name='killed', namespace='tests').acquire()\n"
            "print('held', flush=True); time.sleep(120)\n"
        )],
        cwd=ROOT, env={**worker_env}, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError):
            registry.get(name="killed", namespace="tests", timeout=0.2).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with registry.get(name="killed", namespace="tests", timeout=10):
        pass
