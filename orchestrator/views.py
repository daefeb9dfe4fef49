"""The engine's pages; each view is thin and calls selectors and services."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from orchestrator import selectors


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    processes = selectors.processes_for_user(request.user)
    context = {
        "running": processes.filter(status__in=("created", "queued", "running", "resumed"))[:20],
        "failed": processes.filter(
            status__in=("failed", "api_unavailable", "inconsistent_data", "waiting")
        )[:20],
        "suspended": processes.filter(status__in=("suspended", "awaiting_callback"))[:20],
    }
    return render(request, "orchestrator/dashboard.html", context)
