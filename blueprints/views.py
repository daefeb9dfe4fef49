"""Pages of the blueprints app (templates, blueprints and their executions): thin views over
`blueprints.selectors`; every object is looked up among those the user may view (404)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from blueprints import selectors


@login_required
def blueprint_list(request: HttpRequest) -> HttpResponse:
    blueprints = selectors.blueprints_for_user(request.user).order_by("name")
    return render(request, "blueprints/blueprint_list.html", {"blueprints": blueprints})


@login_required
def blueprint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    blueprint = get_object_or_404(
        selectors.blueprint_with_relations(selectors.blueprints_for_user(request.user)), pk=pk
    )
    context = {
        "blueprint": blueprint,
        "plan": selectors.blueprint_plan(blueprint),
        "executions": selectors.executions_for_user(request.user).filter(blueprint=blueprint)[:20],
    }
    return render(request, "blueprints/blueprint_detail.html", context)


@login_required
def execution_detail(request: HttpRequest, pk) -> HttpResponse:
    execution = get_object_or_404(selectors.executions_for_user(request.user), pk=pk)
    context = {"execution": execution, "levels": selectors.execution_levels(execution)}
    return render(request, "blueprints/execution_detail.html", context)
