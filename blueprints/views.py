"""Pages of the blueprints app (templates, blueprints and their executions)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def blueprint_list(request: HttpRequest) -> HttpResponse:
    """The blueprints list; the app's models and pages are still being built."""
    return render(request, "blueprints/blueprint_list.html")
