"""Templates, blueprints and executions run in-process: validation on save, the plan, the
dependency-driven run, failure and executing again, snapshots, secrets."""

from __future__ import annotations

import pytest

from blueprints import selectors, services
from blueprints.models import Execution
from orchestrator.exceptions import Conflict, FormInvalid
from orchestrator.models import Process, WorkerPing
from tests.blueprint_helpers import (
    drain,
    make_blueprint,
    make_template,
    steps_of,
    template_payload,
)

pytestmark = pytest.mark.django_db


def refusal(call, *args, **kwargs) -> FormInvalid:
    with pytest.raises(FormInvalid) as caught:
        call(*args, **kwargs)
    return caught.value


# --- validation ----------------------------------------------------------------------------


def test_a_cycle_is_refused_naming_its_templates(res_product):
    for name in ("a", "b", "c", "d"):
        make_template(name)
    error = refusal(make_blueprint, "loop", ["a", "b", "c", "d"], wiring=[
        ("a", "res_id", "b", "upstream_id"), ("b", "res_id", "c", "upstream_id"),
        ("c", "res_id", "a", "upstream_id"), ("a", "res_id", "d", "upstream_id"),
    ])
    assert "cycle" in error.message
    assert "templates a, b, c depend on each other" in error.message
    assert "d" not in error.message.split("depend")[0].split("(templates")[1]
    assert "wiring" in error.field_errors


@pytest.mark.parametrize(
    ("wiring", "rule"),
    [
        ([("a", "res_id", "a", "upstream_id")], "self-wiring: rule a.res_id → a.upstream_id"),
        ([("a", "nope", "b", "upstream_id")], "unknown output: rule a.nope → b.upstream_id"),
        ([("a", "res_id", "b", "nope")], "unknown variable: rule a.res_id → b.nope"),
        ([("a", "subnets", "b", "upstream_id")],
         "type mismatch: rule a.subnets → b.upstream_id: output is array, variable is string"),
        ([("a", "res_id", "b", "upstream_id"), ("a", "res_id", "b", "upstream_id")],
         "wired twice"),
        ([("a", "res_id", "zzz", "upstream_id")], "template not in blueprint"),
    ],
)
def test_bad_wiring_is_refused_naming_the_rule(res_product, wiring, rule):
    make_template("a")
    make_template("b")
    error = refusal(make_blueprint, "bp", ["a", "b"], wiring=wiring)
    assert rule in error.message
    assert not selectors.blueprints_for_user(None).exists()


@pytest.mark.parametrize(
    ("defaults", "rule"),
    [
        ({"a": {"nope": 1}}, "unknown variable: a has no variable 'nope'"),
        ({"a": {"size": "big"}}, "type mismatch: default of a.size expects integer, got string"),
        ({"a": {"password": "x"}}, "secret default: a.password is secret"),
        ({"zzz": {"name": "x"}}, "template not in blueprint"),
        ({"a": ["x"]}, "must be an object"),
    ],
)
def test_bad_defaults_are_refused_naming_the_rule(res_product, defaults, rule):
    make_template("a")
    assert rule in refusal(make_blueprint, "bp", ["a"], defaults=defaults).message


@pytest.mark.parametrize(
    ("change", "field", "rule"),
    [
        ({"workflow": "no_such_workflow"}, "workflow", "unregistered workflow: 'no_such_workflow'"),
        ({"workflow": "modify_box"}, "workflow", "is a modify workflow"),
        ({"variables": [{"name": "name"}, {"name": "customer_id"}, {"name": "nope"}]},
         "variables", "unknown variable: variable 'nope' is not a field"),
        ({"variables": [{"name": "customer_id"}]}, "variables",
         "missing variable: the form of workflow 'create_res' requires field 'name'"),
        ({"variables": [{"name": "name"}, {"name": "customer_id"}, {"name": "size",
                                                                    "type": "string"}]},
         "variables", "type mismatch: variable 'size' is string but the form field is integer"),
        ({"variables": [{"name": "name", "secret": True}, {"name": "customer_id"}]},
         "variables", "secret mismatch"),
        ({"variables": [{"name": "name"}, {"name": "customer_id"},
                        {"name": "password", "secret": True, "default": "x"}]},
         "variables", "secret default"),
        ({"variables": [{"name": "name", "default": 3}, {"name": "customer_id"}]},
         "variables", "type mismatch: default of variable 'name' expects string, got integer"),
        ({"variables": [{"name": "1bad"}]}, "variables", "must be an identifier"),
        ({"variables": [{"name": "name", "colour": "red"}]}, "variables", "unknown key(s) colour"),
        ({"outputs": ["x", "x"]}, "outputs", "duplicate output"),
        ({"outputs": [{"name": "x", "type": "colour"}]}, "outputs", "unknown type"),
        ({"product": None}, "product", "give the product"),
        ({"product": "Nope"}, "product", "Unknown product"),
        ({"name": ""}, "name", "name is required"),
        ({"name": "x" * 101}, "name", "longer than 100"),
        ({"name": "a\x00b"}, "name", "NUL"),
        ({"source_code_versions": ["v1", "v1"]}, "source_code_versions", "listed twice"),
    ],
)
def test_bad_templates_are_refused_naming_the_field_and_rule(res_product, change, field, rule):
    error = refusal(services.save_template, data={**template_payload("t"), **change})
    assert rule in error.message
    assert field in error.field_errors
    assert not selectors.templates_for_user(None).exists()


def test_a_template_change_that_would_break_a_blueprint_is_refused(three_tier):
    net = selectors.templates_for_user(None).get(name="net")
    error = refusal(services.save_template, template=net, data={"outputs": ["subnets"]})
    assert "would break blueprint three-tier" in error.message
    assert "unknown output" in error.message
    net.refresh_from_db()
    assert "res_id" in [o["name"] for o in net.outputs]


def test_a_task_can_be_a_template_without_a_product(synced):
    template = services.save_template(data={"name": "echo", "workflow": "task_echo",
                                            "variables": [{"name": "text"}],
                                            "outputs": ["echoed"]})
    assert template.product is None
    assert refusal(services.save_template, template=template, data={"product": "Box"})


# --- the plan ------------------------------------------------------------------------------


def test_the_plan_has_levels_and_each_variable_says_where_it_comes_from(three_tier):
    plan = selectors.blueprint_plan(three_tier, overrides={})
    assert plan.level_names == [["net"], ["app", "db"]]
    app = plan.steps[1]
    assert app.upstream == ["net"]
    assert app.variables["upstream_id"] == {"value": None, "source": "wired",
                                            "wired_from": "net.res_id", "pending": True}
    assert app.variables["name"] == {"value": "app-1", "source": "blueprint_default"}
    assert app.variables["customer_id"] == {"value": "platform", "source": "template_default"}
    assert app.variables["password"] == {"value": None, "source": "", "secret": True}
    app_id = app.template.id
    overridden = selectors.blueprint_plan(three_tier, overrides={app_id: {"upstream_id": "mine",
                                                                          "password": "pw"}})
    assert overridden.steps[1].variables["upstream_id"]["source"] == "override"
    assert overridden.steps[1].variables["password"] == {"value": "***", "source": "override",
                                                         "secret": True}


def test_a_chain_plans_one_level_per_link_and_independent_templates_at_level_zero(res_product):
    for name in ("a", "b", "c", "lone"):
        make_template(name)
    blueprint = make_blueprint("chain", ["c", "lone", "b", "a"], wiring=[
        ("a", "res_id", "b", "upstream_id"), ("b", "res_id", "c", "upstream_id")])
    assert selectors.blueprint_plan(blueprint).level_names == [["lone", "a"], ["b"], ["c"]]


# --- running -------------------------------------------------------------------------------


def test_an_execution_runs_in_dependency_order_and_passes_outputs_on(three_tier):
    execution = services.create_execution(blueprint=three_tier, data={})
    assert execution.status == "pending"
    services.execute_execution(execution=execution)
    assert drain() >= 4
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    steps = steps_of(execution)
    net, app, db = steps["net"], steps["app"], steps["db"]
    assert (net.position, app.position, db.position) == (0, 1, 1)
    assert net.outputs["res_id"] == "res-net-1"
    assert app.resolved_variables["upstream_id"] == {"value": "res-net-1", "source": "wired",
                                                     "wired_from": "net.res_id"}
    assert app.outputs["received_upstream"] == "res-net-1"
    assert app.resource.description == "Res app-1" and app.resource.status == "active"
    assert app.process.parent_id == execution.run_id
    assert list(app.parent_resources.all()) == [net.resource]
    assert set(app.resource.depends_on.all()) == {net.resource}
    assert execution.completed_at is not None


def test_an_override_beats_the_wired_value_which_beats_the_default(three_tier):
    app = three_tier.members.get(template__name="app").template
    execution = services.create_execution(
        blueprint=three_tier, data={"variable_overrides": {"app": {"upstream_id": "chosen"}}})
    services.execute_execution(execution=execution)
    drain()
    steps = steps_of(Execution.objects.get(pk=execution.pk))
    assert steps["app"].outputs["received_upstream"] == "chosen"
    assert steps["app"].resolved_variables["upstream_id"]["source"] == "override"
    assert steps["db"].outputs["received_upstream"] == "res-net-1"
    assert app.pk == steps["app"].template_id


def test_a_failing_step_marks_the_execution_error_leaves_the_rest_pending_and_rerun_runs_only_it(
    res_product,
):
    for name in ("base", "good", "bad", "after_bad"):
        make_template(name)
    blueprint = make_blueprint(
        "fails", ["base", "good", "bad", "after_bad"],
        wiring=[("base", "res_id", "good", "upstream_id"), ("base", "res_id", "bad", "upstream_id"),
                ("bad", "res_id", "after_bad", "upstream_id")],
        defaults={"base": {"name": "base"}, "good": {"name": "good"},
                  "bad": {"name": "bad", "fail": True}, "after_bad": {"name": "after"}},
    )
    execution = services.create_execution(blueprint=blueprint)
    services.execute_execution(execution=execution)
    drain()
    execution.refresh_from_db()
    steps = steps_of(execution)
    assert execution.status == "error"
    assert "Step bad failed" in execution.error_message
    assert "provisioning bad failed on purpose" in steps["bad"].error_message
    assert steps["good"].status == "done" and steps["base"].status == "done"
    assert steps["after_bad"].status == "pending"
    failed_process = steps["bad"].process
    assert failed_process.status == "failed"
    services.update_execution(execution=execution,
                              data={"variable_overrides": {"bad": {"fail": False}}})
    services.execute_execution(execution=execution)
    drain()
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    steps = steps_of(execution)
    assert steps["after_bad"].outputs["received_upstream"] == "res-bad"
    failed_process.refresh_from_db()
    assert failed_process.status == "aborted"  # superseded, never resumable beside the new one
    markers = list(WorkerPing.objects.filter(marker__startswith="res:").values_list("marker",
                                                                                   flat=True))
    names = sorted(marker.split(":")[1] for marker in markers)
    assert names == ["after", "bad", "base", "good"]  # each ran exactly once


def test_execute_is_refused_unless_pending_or_in_error(three_tier):
    execution = services.create_execution(blueprint=three_tier)
    services.execute_execution(execution=execution)
    with pytest.raises(Conflict, match="Execution is in_progress: only a pending execution, or "
                                       "one that ended in error, can be executed"):
        services.execute_execution(execution=execution)
    drain()
    with pytest.raises(Conflict, match="Execution is done"):
        services.execute_execution(execution=execution)
    with pytest.raises(Conflict, match="overrides can be changed only while"):
        services.update_execution(execution=execution, data={})


def test_a_disabled_blueprint_cannot_execute(three_tier):
    execution = services.create_execution(blueprint=three_tier)
    services.set_blueprint_enabled(blueprint=three_tier, enabled=False)
    with pytest.raises(Conflict, match="disabled"):
        services.execute_execution(execution=execution)
    with pytest.raises(Conflict, match="disabled"):
        services.create_execution(blueprint=three_tier)


def test_editing_the_blueprint_after_creating_an_execution_does_not_change_it(three_tier):
    execution = services.create_execution(blueprint=three_tier)
    make_template("extra")
    services.save_blueprint(blueprint=three_tier, data={
        "templates": ["net", "app", "extra"],
        "wiring": [{"source_template": "app", "source_output": "res_id",
                    "target_template": "extra", "target_variable": "upstream_id"}],
        "default_variables": {"net": {"name": "changed"}, "app": {"name": "x"},
                              "extra": {"name": "e"}},
    })
    net = selectors.templates_for_user(None).get(name="net")
    services.save_template(template=net, data={"outputs": [*net.outputs, "extra_output"]})
    services.execute_execution(execution=execution)
    drain()
    execution.refresh_from_db()
    assert execution.status == "done"
    assert sorted(steps_of(execution)) == ["app", "db", "net"]
    assert steps_of(execution)["net"].outputs["res_id"] == "res-net-1"
    assert len(execution.wiring_snapshot) == 2


def test_required_variables_without_a_value_are_refused_before_anything_is_stored(res_product):
    make_template("t")
    blueprint = make_blueprint("needs-name", ["t"])
    error = refusal(services.create_execution, blueprint=blueprint)
    assert "missing value" in error.message and "t.name" in error.message
    assert not Execution.objects.exists()
    execution = services.create_execution(blueprint=blueprint, data={
        "variable_overrides": {"t": {"name": "given"}}})
    assert steps_of(execution)["t"].resolved_variables["name"] == {"value": "given",
                                                                   "source": "override"}


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"variable_overrides": {"nope": {}}}, "variable_overrides"),
        ({"variable_overrides": {"net": {"nope": 1}}}, "variable_overrides"),
        ({"variable_overrides": {"net": {"size": "x"}}}, "variable_overrides"),
        ({"variable_overrides": []}, "variable_overrides"),
        ({"source_code_versions": {"net": "v9"}}, "source_code_versions"),
        ({"parent_overrides": {"net": ["not-a-uuid"]}}, "parent_overrides"),
        ({"parent_overrides": {"net": "x"}}, "parent_overrides"),
        ({"integrations": [12345]}, "integrations"),
        ({"secrets": ["nope"]}, "secrets"),
        ({"storage": "nope"}, "storage"),
        ({"storage": "x" * 10000}, "storage"),
        ({"colour": "red"}, "detail"),
    ],
)
def test_bad_execution_input_is_refused_naming_the_field(three_tier, data, field):
    error = refusal(services.create_execution, blueprint=three_tier, data=data)
    assert field in error.field_errors
    assert not Execution.objects.exists()


def test_no_process_is_started_twice_when_a_completion_is_reported_again(three_tier):
    """The hook is idempotent: a step's completion noted twice starts nothing more."""
    from blueprints import runs

    execution = services.create_execution(blueprint=three_tier)
    services.execute_execution(execution=execution)
    drain()
    net = steps_of(Execution.objects.get(pk=execution.pk))["net"]
    before = Process.objects.count()
    from django.db import transaction

    with transaction.atomic():
        runs.process_stopped(net.process, "completed")
    assert Process.objects.count() == before


def test_a_step_cancelled_at_its_start_by_a_concurrency_limit_is_in_error(synced):
    """Two steps of a workflow limited to one run at a time (cancel_new): the second to
    start is cancelled at once, and its step says so instead of waiting for ever."""
    from orchestrator.runner import run_process

    for name in ("first", "second"):
        services.save_template(data={"name": name, "workflow": "wf_one_cancel_new",
                                     "variables": [{"name": "hold", "default": 5}]})
    blueprint = make_blueprint("limited", ["first", "second"])
    execution = services.create_execution(blueprint=blueprint)
    services.execute_execution(execution=execution)
    execution.refresh_from_db()
    run_process(str(execution.run_id))  # the run starts both; the limit cancels one
    execution.refresh_from_db()
    steps = steps_of(execution)
    assert sorted(step.status for step in steps.values()) == ["error", "in_progress"]
    cancelled = next(step for step in steps.values() if step.status == "error")
    assert cancelled.process.status == "cancelled"
    assert "wf_one_cancel_new cancelled" in cancelled.error_message
    assert execution.status == "error"


def test_a_step_whose_start_is_refused_is_in_error_and_its_completion_commits(
    three_tier, res_product,
):
    """net's completion starts app first; the product no longer offers app's create
    workflow, so the subscriptions extension refuses the start inside the completion's
    transaction (no savepoint of its own): app is in error saying why, no process of its
    is stored, and the rest of net's completion commits."""
    from orchestrator.runner import run_process

    execution = services.create_execution(blueprint=three_tier, data={})
    services.execute_execution(execution=execution)
    run_process(str(Execution.objects.get(pk=execution.pk).run_id))  # starts net
    net = steps_of(execution)["net"]
    res_product.workflows.remove(res_product.workflows.get(name="create_res"))
    before = Process.objects.count()
    run_process(str(net.process_id))
    steps = steps_of(execution)
    assert steps["net"].status == "done" and steps["net"].process.status == "completed"
    assert steps["app"].status == "error" and steps["app"].process_id is None
    assert steps["app"].error_message == (
        "could not start create_res: create_res is not a workflow of the product Res")
    assert Process.objects.count() == before
    assert Execution.objects.get(pk=execution.pk).status == "error"


def test_a_completion_finds_the_steps_that_wait_for_it_through_the_wiring(three_tier):
    """pending_downstream: the pending steps wired from net (app, db), in key order (the
    lock order); a step no longer pending is left out; a template nothing is wired from
    reads no step row at all."""
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from blueprints.models import ExecutionStep
    from blueprints.runs import pending_downstream

    execution = services.create_execution(blueprint=three_tier, data={})
    steps = steps_of(execution)
    net, app, db = steps["net"], steps["app"], steps["db"]
    with transaction.atomic():
        assert [s.pk for s in pending_downstream(execution.pk, net.template_id)] == sorted(
            [app.pk, db.pk])
    ExecutionStep.objects.filter(pk=app.pk).update(status="done")
    with transaction.atomic():
        assert [s.pk for s in pending_downstream(execution.pk, net.template_id)] == [db.pk]
    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        assert pending_downstream(execution.pk, db.template_id) == []
    assert not [q for q in queries if "blueprints_executionstep" in q["sql"]]


def test_a_completion_reads_and_writes_the_execution_in_a_fixed_handful_of_statements(
    three_tier,
):
    """The per-step hot path's baseline (docs/blueprints.md, Speed): net's completion locks
    its step with the execution and its process in one statement, marks it done, locks the
    two steps it feeds and reads their upstream facts, starts each (its context in one
    read, its parent resource linked, its row written once) and settles."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from orchestrator.runner import run_process

    execution = services.create_execution(blueprint=three_tier, data={})
    services.execute_execution(execution=execution)
    run_process(str(Execution.objects.get(pk=execution.pk).run_id))  # starts net
    net = steps_of(execution)["net"]
    with CaptureQueriesContext(connection) as queries:
        run_process(str(net.process_id))
    statements = [query["sql"] for query in queries if "blueprints_" in query["sql"]]
    assert steps_of(execution)["app"].status == "in_progress"
    assert len(statements) <= 15, "\n".join(statements)
