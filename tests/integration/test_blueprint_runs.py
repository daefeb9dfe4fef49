"""Executions on real workers and the real broker (DESIGN §6, issue 8's starred items):
parallel siblings, dependency-driven starts, failure and executing again, a killed worker."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from blueprints import services
from blueprints.models import Execution
from orchestrator.models import Process, WorkerPing
from tests import markers
from tests.blueprint_helpers import make_blueprint, make_template, steps_of
from tests.conftest import needs_concurrent_writers, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def status_of(execution: Execution) -> str:
    return Execution.objects.values_list("status", flat=True).get(pk=execution.pk)


def finished(execution: Execution, *statuses: str):
    return lambda: status_of(execution) in statuses


def ran(step) -> tuple[float, float]:
    return step.outputs["ran_from"], step.outputs["ran_to"]


def executed(execution: Execution) -> dict[str, object]:
    """Execute on the test's workers, wait until the execution is done; its steps by name."""
    services.execute_execution(execution=execution)
    wait_for(finished(execution, "done", "error"), timeout=90)
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    return steps_of(execution)


def runs_of(name: str) -> int:
    return WorkerPing.objects.filter(marker__startswith=f"res:{name}:").count()


@needs_concurrent_writers
def test_siblings_run_at_the_same_time_and_get_the_upstream_outputs(res_product, start_worker):
    """EKS and RDS (here app and db) overlap and receive the VPC's (net's) outputs; an
    override beats the wired value, which beats the default."""
    for name in ("net", "app", "db"):
        make_template(name)
    blueprint = make_blueprint(
        "parallel", ["net", "app", "db"],
        wiring=[("net", "res_id", "app", "upstream_id"), ("net", "res_id", "db", "upstream_id")],
        defaults={"net": {"name": "net"}, "app": {"name": "app", "delay": 1.0,
                                                   "upstream_id": "default"},
                  "db": {"name": "db", "delay": 1.0, "upstream_id": "default"}},
    )
    start_worker(pool="threads", concurrency=4)
    execution = services.create_execution(
        blueprint=blueprint, data={"variable_overrides": {"db": {"upstream_id": "override"}}}
    )
    steps = executed(execution)
    app_from, app_to = ran(steps["app"])
    db_from, db_to = ran(steps["db"])
    assert app_from < db_to and db_from < app_to, "app and db did not overlap"
    assert steps["app"].outputs["received_upstream"] == "res-net"  # wired beats the default
    assert steps["db"].outputs["received_upstream"] == "override"  # override beats the wire
    assert steps["db"].resolved_variables["upstream_id"]["source"] == "override"
    assert all(step.process.parent_id == execution.run_id for step in steps.values())


def test_the_worker_that_completes_a_step_runs_one_step_it_made_ready_itself(
    three_tier, start_worker
):
    """net's completion starts app and db: the worker thread that committed it runs one
    of them next itself, never sent to the broker (no enqueued mark), and sends the other."""
    start_worker(pool="threads", concurrency=2)
    execution = services.create_execution(blueprint=three_tier)
    steps = executed(execution)
    sent = sorted(steps[name].process.enqueued_at is not None for name in ("app", "db"))
    assert sent == [False, True]
    assert {steps[name].process.status for name in ("app", "db")} == {"completed"}


@needs_concurrent_writers
def test_a_step_that_does_not_need_a_slow_sibling_starts_before_it_finishes(
    res_product, start_worker
):
    for name in ("base", "slow", "fast", "after_fast"):
        make_template(name)
    blueprint = make_blueprint(
        "not-by-level", ["base", "slow", "fast", "after_fast"],
        wiring=[("base", "res_id", "slow", "upstream_id"),
                ("base", "res_id", "fast", "upstream_id"),
                ("fast", "res_id", "after_fast", "upstream_id")],
        defaults={"base": {"name": "base"}, "slow": {"name": "slow", "delay": 4.0},
                  "fast": {"name": "fast"}, "after_fast": {"name": "after_fast"}},
    )
    start_worker(pool="threads", concurrency=4)
    execution = services.create_execution(blueprint=blueprint)
    steps = executed(execution)
    assert steps["after_fast"].position == 2 and steps["slow"].position == 1
    assert ran(steps["after_fast"])[1] < ran(steps["slow"])[1]
    assert steps["after_fast"].started_at < steps["slow"].completed_at


def test_a_failing_step_errors_the_execution_siblings_finish_and_executing_again_runs_only_it(
    res_product, start_worker
):
    """RDS fails: the execution is in error, EKS still finishes, nothing is deleted; once
    the cause is fixed, executing again runs only RDS."""
    for name in ("vpc", "eks", "rds"):
        make_template(name)
    blueprint = make_blueprint(
        "fail-and-fix", ["vpc", "eks", "rds"],
        wiring=[("vpc", "res_id", "eks", "upstream_id"), ("vpc", "res_id", "rds", "upstream_id")],
        defaults={"vpc": {"name": "vpc"}, "eks": {"name": "eks", "delay": 1.5},
                  "rds": {"name": "rds-broken", "fail": True}},
    )
    start_worker(pool="threads", concurrency=4)
    execution = services.create_execution(blueprint=blueprint)
    services.execute_execution(execution=execution)
    wait_for(finished(execution, "error"), timeout=90)
    wait_for(lambda: steps_of(Execution.objects.get(pk=execution.pk))["eks"].status == "done",
             timeout=60)
    execution.refresh_from_db()
    steps = steps_of(execution)
    assert "Step rds failed" in execution.error_message
    assert steps["eks"].resource.status == "active"  # nothing rolled back or deleted
    assert steps["vpc"].resource.status == "active"
    vpc_resource = steps["vpc"].resource_id
    with markers.present("blueprint-fix-rds-broken"):  # the cause is fixed
        steps = executed(execution)
    assert steps["vpc"].resource_id == vpc_resource
    assert (runs_of("vpc"), runs_of("eks"), runs_of("rds-broken")) == (1, 1, 1)
    assert Process.objects.filter(workflow__name="create_res").count() == 4  # rds twice


def test_a_worker_killed_during_an_execution_loses_nothing_and_repeats_nothing(
    res_product, start_worker, settings
):
    """Kill the worker several times while steps run; a new worker and the sweep finish the
    execution and every step ran exactly once."""
    settings.ORCHESTRATOR_REQUEUE_AFTER_SECONDS = 2
    names = ["k0", "k1a", "k1b", "k2", "k3"]
    for name in names:
        make_template(name)
    blueprint = make_blueprint(
        "killed", names,
        wiring=[("k0", "res_id", "k1a", "upstream_id"), ("k0", "res_id", "k1b", "upstream_id"),
                ("k1a", "res_id", "k2", "upstream_id"), ("k1b", "subnets", "k2", "items"),
                ("k2", "res_id", "k3", "upstream_id")],
        defaults={name: {"name": name, "delay": 0.6} for name in names},
    )
    execution = services.create_execution(blueprint=blueprint)
    services.execute_execution(execution=execution)
    from orchestrator import services as engine

    kills = 0
    deadline = time.monotonic() + 120
    while status_of(execution) == "in_progress" and kills < 6 and time.monotonic() < deadline:
        worker = start_worker(pool="threads", concurrency=2, ORCHESTRATOR_LEASE_SECONDS="2")
        time.sleep(1.2)  # inside some step's provisioning
        worker.kill()
        kills += 1
        wait_for(lambda: not Process.objects.filter(lease_expires_at__gt=timezone.now())
                 .exclude(lease_owner="").exists(), timeout=10)
        engine.recover_processes()
    assert kills >= 2, "the execution finished before the worker could be killed twice"
    start_worker(pool="threads", concurrency=2, ORCHESTRATOR_LEASE_SECONDS="2")

    def done_with_sweeps():
        engine.recover_processes()
        return status_of(execution) in ("done", "error")

    wait_for(done_with_sweeps, timeout=120, interval=0.5)
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    assert [runs_of(name) for name in names] == [1] * len(names)
    assert Process.objects.filter(workflow__name="create_res").count() == len(names)
    steps = steps_of(execution)
    assert steps["k2"].outputs["received_upstream"] == "res-k1a"
