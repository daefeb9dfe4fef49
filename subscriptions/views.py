"""Pages of the subscriptions app (products and what was provisioned)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    """The subscriptions list; the app's models and pages are still being built."""
    return render(request, "subscriptions/subscription_list.html")
