"""Login throttling (django-axes): the authentication backend that refuses locked-out logins,
and the answers of a lockout (the API's token view, orchestrator.api.views.ApiTokenView,
answers LockedOut). Failures are counted per username and per
client address (`orchestrator.audit.client_address`, the audit trail's)."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from rest_framework import exceptions, status


class LoginThrottleBackend(AxesStandaloneBackend):
    """Refuses a login while its account or client address is locked out.

    Only authentication that a client asks for carries a request (the login page, the admin
    login, `POST /api/auth/token/`): those are throttled. A call without one (the test
    client's `login()`, code checking a password it was given) has no client to throttle;
    django-axes would raise for it, this backend simply has no opinion.
    """

    def authenticate(self, request, username=None, password=None, **kwargs: Any):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


class LockedOut(exceptions.APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "locked_out"


def lockout_page(request: HttpRequest, original_response=None, credentials=None) -> HttpResponse:
    """The 429 page of the login page and the admin login while a lockout lasts."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    context = {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes}
    return render(request, "registration/locked_out.html", context, status=429)
