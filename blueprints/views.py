"""Pages of the blueprints app: templates, blueprints (the plan drawn as a graph, the wiring,
the Execute form) and executions (steps by level, live). Thin views over
`blueprints.selectors` and `blueprints.services`, the same functions the API calls; every
object is looked up among those the user may view (404 otherwise), every action checked by
its service (403), and a refusal re-renders the page saying why, changing nothing.

Every page works without JavaScript; the execution page's live part is a fragment that
static/js/live.js re-fetches while something in it still moves on its own.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from blueprints import selectors, services
from blueprints.forms import ExecutionForm, StepRows, plan_rows, variable_rows
from blueprints.graph import Node, dependency_graph_svg
from blueprints.models import (
    Blueprint,
    Execution,
    ExecutionStatus,
    ExecutionStep,
    StepStatus,
    TeardownStatus,
)
from blueprints.plan import NO_VALUE
from orchestrator.exceptions import OrchestratorError
from orchestrator.filters import StrictFilterSet
from orchestrator.forms import add_service_errors

PAGE_SIZE = 25
RECENT_EXECUTIONS = 10
THEN_EXECUTE = "execute"  # the submit button that also executes (name "then")


# --- templates ------------------------------------------------------------------------------


@login_required
def template_list(request: HttpRequest) -> HttpResponse:
    templates = selectors.templates_for_user(request.user).order_by("name")
    return render(request, "blueprints/template_list.html", {"templates": templates})


@login_required
def template_detail(request: HttpRequest, pk: int) -> HttpResponse:
    template = get_object_or_404(selectors.templates_for_user(request.user), pk=pk)
    spec = selectors.template_spec(template)
    context = {
        "template": template,
        "spec": spec,
        "variables": [(v, v.default is not NO_VALUE) for v in spec.variables],
        "blueprints": selectors.blueprints_using(request.user, template),
    }
    return render(request, "blueprints/template_detail.html", context)


# --- blueprints -----------------------------------------------------------------------------


@login_required
def blueprint_list(request: HttpRequest) -> HttpResponse:
    blueprints = selectors.blueprints_with_counts(selectors.blueprints_for_user(request.user))
    return render(request, "blueprints/blueprint_list.html", {"blueprints": blueprints})


def visible_blueprint(request: HttpRequest, pk: int) -> Blueprint:
    return get_object_or_404(
        selectors.blueprint_with_relations(selectors.blueprints_for_user(request.user)), pk=pk
    )


def plan_graph(plan: selectors.BlueprintPlan, title: str) -> str:
    """The plan drawn by level; a node jumps to its template's variables below."""
    levels = [
        [Node(key=step.template.id, label=step.template.name, detail=step.template.workflow,
              url=f"#template-{step.template.id}") for step in level]
        for level in plan.levels
    ]
    return dependency_graph_svg(levels, plan.edges, title=title, id_prefix="plan")


def blueprint_page(request: HttpRequest, blueprint: Blueprint, form: ExecutionForm | None = None,
                   errors: list[str] | None = None, status: int = 200) -> HttpResponse:
    user = request.user
    parts = selectors.blueprint_parts(blueprint)
    may_execute = selectors.may_create_execution(user, blueprint)
    if form is None and may_execute and blueprint.enabled:
        form = ExecutionForm(user=user, parts=parts)
    plan = form.plan if form is not None else selectors.plan_parts(parts)
    if plan.problems or not blueprint.enabled:
        form = None
    context = {
        "blueprint": blueprint,
        "plan": plan,
        "levels": plan_rows(plan, form),
        "graph": plan_graph(plan, f"Dependency graph of {blueprint.name}"),
        "form": form,
        "errors": errors or [],
        "may_execute": may_execute,
        "then_execute": THEN_EXECUTE,
        "executions": selectors.executions_for_user(user).filter(blueprint=blueprint)
        [:RECENT_EXECUTIONS],
    }
    return render(request, "blueprints/blueprint_detail.html", context, status=status)


@login_required
def blueprint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    return blueprint_page(request, visible_blueprint(request, pk))


@require_POST
@login_required
def blueprint_execute(request: HttpRequest, pk: int) -> HttpResponse:
    """Create an execution from the Execute form, and execute it unless asked only to
    create it (to review first)."""
    blueprint = visible_blueprint(request, pk)
    if not selectors.may_create_execution(request.user, blueprint):
        raise PermissionDenied("You may not execute this blueprint.")
    form = ExecutionForm(request.POST, user=request.user,
                         parts=selectors.blueprint_parts(blueprint))
    if not form.is_valid():
        return blueprint_page(request, blueprint, form, status=400)
    try:
        execution = services.create_execution(user=request.user, blueprint=blueprint,
                                              data=form.payload())
    except OrchestratorError as error:
        errors = add_service_errors(form, error) or [error.message]
        return blueprint_page(request, blueprint, form, errors, status=error.http_status)
    if request.POST.get("then") == THEN_EXECUTE:
        run(request, services.execute_execution, execution, "Executing: the steps start as "
            "what they wait for is done.")
    else:
        messages.success(request, "Created a pending execution: review it, then execute it.")
    return redirect("execution-detail", pk=execution.pk)


def run(request: HttpRequest, action, execution: Execution, success: str) -> bool:
    """One service action on an execution; its refusal becomes a message (a permission one
    a 403)."""
    try:
        action(user=request.user, execution=execution)
    except OrchestratorError as error:
        messages.error(request, error.message)
        return False
    messages.success(request, success)
    return True


# --- executions -----------------------------------------------------------------------------


class ExecutionFilter(StrictFilterSet):
    """The list's GET filters, named as the API's query parameters."""

    blueprint = django_filters.ChoiceFilter(field_name="blueprint_id", empty_label="any",
                                            label="Blueprint")
    status = django_filters.ChoiceFilter(choices=ExecutionStatus.choices, empty_label="any")

    class Meta:
        model = Execution
        fields = ["blueprint", "status"]

    def __init__(self, *args, blueprints=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["blueprint"].extra["choices"] = [(str(b.pk), b.name) for b in blueprints]


@login_required
def execution_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    executions = selectors.executions_with_progress(
        selectors.executions_for_user(user)
    ).order_by("-created_at", "-pk")
    execution_filter = ExecutionFilter(
        request.GET or None, queryset=executions,
        blueprints=selectors.blueprints_for_user(user).order_by("name"),
    )
    page = Paginator(execution_filter.rows(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter": execution_filter, "page": page, "executions": page.object_list}
    status = 400 if execution_filter.errors else 200
    return render(request, "blueprints/execution_list.html", context, status=status)


def visible_execution(request: HttpRequest, pk) -> Execution:
    return get_object_or_404(selectors.executions_for_user(request.user), pk=pk)


def edit_form(request: HttpRequest, execution: Execution, steps: list[ExecutionStep],
              data=None) -> ExecutionForm:
    """The form of the execution's overrides and choices: the steps done keep theirs."""
    return ExecutionForm(
        data, user=request.user,
        parts=services.snapshot_parts(execution, steps),
        current=services.execution_data(execution),
        frozen=frozenset(s.template_id for s in steps if s.status == StepStatus.DONE),
    )


def execution_graph(levels: list[list[ExecutionStep]], edges: list[dict[str, Any]]) -> str:
    nodes = [
        [Node(key=step.template_id, label=step.template_snapshot.get("name", ""),
              detail=step.status.replace("_", " "), status=step.status, url=f"#step-{step.pk}")
         for step in level]
        for level in levels
    ]
    return dependency_graph_svg(nodes, edges, title="Steps by level", id_prefix="steps")


def execution_context(request: HttpRequest, execution: Execution,
                      form: ExecutionForm | None = None, errors: list[str] | None = None
                      ) -> dict[str, Any]:
    user = request.user
    levels = selectors.execution_levels(execution)
    steps = [step for level in levels for step in level]
    running = any(step.status == StepStatus.IN_PROGRESS for step in steps)
    live = running or execution.status == ExecutionStatus.IN_PROGRESS or \
        execution.teardown_status == TeardownStatus.IN_PROGRESS
    may_execute = selectors.may_execute(user, execution)
    open_for_input = execution.status in services.EDITABLE and not execution.teardown_status
    editable = may_execute and open_for_input and not running
    if editable and form is None:
        form = edit_form(request, execution, steps)
    form = form if editable else None
    names = {step.template_id: step.template_snapshot.get("name", "") for step in steps}
    rows = []
    for level in levels:
        level_rows = []
        for step in level:
            spec = selectors.template_spec_from(step.template_snapshot, step.template_id)
            level_rows.append(StepRows(
                template=spec,
                rows=variable_rows(spec, step.resolved_variables, form),
                upstream=[names.get(pk, str(pk)) for pk in step.upstream],
                version=form.bound(f"version-{step.template_id}") if form else None,
                parents=form.bound(f"parents-{step.template_id}") if form else None,
                step=step,
            ))
        rows.append(level_rows)
    return {
        "execution": execution,
        "levels": rows,
        "graph": execution_graph(levels, selectors.execution_edges(execution)),
        "live": live,
        "running": running,
        "step_count": len(steps),
        "done_count": sum(step.status == StepStatus.DONE for step in steps),
        "form": form,
        "errors": errors or [],
        "then_execute": THEN_EXECUTE,
        "may_execute": may_execute and open_for_input and execution.blueprint.enabled
        and not running,
        "disabled": open_for_input and not execution.blueprint.enabled,
        "may_delete": selectors.may_delete(user, execution) and not live,
        "may_tear_down": selectors.may_tear_down(user, execution) and not live
        and execution.status in (ExecutionStatus.DONE, ExecutionStatus.ERROR)
        and execution.teardown_status in (TeardownStatus.NONE, TeardownStatus.ERROR)
        and any(step.resource_id for step in steps),
    }


@login_required
def execution_detail(request: HttpRequest, pk) -> HttpResponse:
    execution = visible_execution(request, pk)
    return render(request, "blueprints/execution_detail.html",
                  execution_context(request, execution))


@login_required
def execution_fragment(request: HttpRequest, pk) -> HttpResponse:
    """The live part of the execution page, re-fetched by static/js/live.js."""
    execution = visible_execution(request, pk)
    return render(request, "blueprints/fragments/execution_live.html",
                  execution_context(request, execution))


@require_POST
@login_required
def execution_update(request: HttpRequest, pk) -> HttpResponse:
    """Save the overrides and choices (pending or in error), and execute when asked."""
    execution = visible_execution(request, pk)
    if not selectors.may_execute(request.user, execution):
        raise PermissionDenied("You may not change this execution.")
    steps = list(selectors.execution_steps(execution))
    form = edit_form(request, execution, steps, request.POST)
    errors: list[str] = []
    status = 400
    if form.is_valid():
        try:
            services.update_execution(user=request.user, execution=execution,
                                      data=form.payload())
        except OrchestratorError as error:
            errors = add_service_errors(form, error) or [error.message]
            status = error.http_status
        else:
            if request.POST.get("then") == THEN_EXECUTE:
                run(request, services.execute_execution, execution, "Saved and executing.")
            else:
                messages.success(request, "Overrides saved; the steps not done are planned "
                                          "again.")
            return redirect("execution-detail", pk=execution.pk)
    if status == 409:  # no longer editable: the page says why, the form goes
        messages.error(request, errors[0])
        return redirect("execution-detail", pk=execution.pk)
    context = execution_context(request, execution, form, errors)
    return render(request, "blueprints/execution_detail.html", context, status=status)


@require_POST
@login_required
def execution_teardown(request: HttpRequest, pk) -> HttpResponse:
    execution = visible_execution(request, pk)
    run(request, services.teardown_execution, execution,
        "Tearing down: the resources are terminated in reverse order.")
    return redirect("execution-detail", pk=execution.pk)


@require_POST
@login_required
def execution_delete(request: HttpRequest, pk) -> HttpResponse:
    execution = visible_execution(request, pk)
    blueprint_id = execution.blueprint_id
    if not run(request, services.delete_execution, execution,
               "Execution deleted; its processes and resources stay."):
        return redirect("execution-detail", pk=execution.pk)
    return redirect(reverse("execution-list") + f"?blueprint={blueprint_id}")
