"""The audit trail: what users do outside a process's own steps — who, what, when, from where.

Recording an action is one call, made by the service that performs it inside its own
transaction (so the row commits exactly when the action does):

    from orchestrator.audit import record_action

    record_action("blueprint.execute", user=user, target=execution, detail={"steps": 3})

The client address and the channel (`page`, `api`, `admin`) come from the request being
served (`AuditContextMiddleware` remembers it); outside a request (Celery, management
commands) the channel is `system`. Every add, change and delete made in the Django admin, for
every model registered with it, is recorded by `AuditedAdminSite`; logins, logouts and failed
logins by Django's auth signals. Never put a secret or a form's values in `detail`.
"""

from __future__ import annotations

import ipaddress
import json
import math
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db import models
from django.dispatch import receiver
from django.http import HttpRequest

from orchestrator.models import AuditEvent

_current_request: ContextVar[HttpRequest | None] = ContextVar("audit_request", default=None)


class AuditContextMiddleware:
    """Remembers the request being served, for the audit rows written while serving it."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        token = _current_request.set(request)
        try:
            return self.get_response(request)
        finally:
            _current_request.reset(token)


def client_address(request: HttpRequest) -> str | None:
    """The client's IP address. Behind `ORCHESTRATOR_PROXY_COUNT` reverse proxies it is the
    entry that many places from the right of X-Forwarded-For (the part the proxies wrote, not
    what a client may have sent); without proxies, the connection's address."""
    address = request.META.get("REMOTE_ADDR", "")
    proxies = settings.ORCHESTRATOR_PROXY_COUNT
    if proxies > 0:
        forwarded = [
            part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
        ]
        forwarded = [part for part in forwarded if part]
        if len(forwarded) >= proxies:
            address = forwarded[-proxies]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return None


def channel(request: HttpRequest | None) -> str:
    if request is None:
        return "system"
    path = request.path_info
    if path.startswith("/api/"):
        return "api"
    if path.startswith("/admin/"):
        return "admin"
    return "page"


def clean_text(value: Any, limit: int) -> str:
    """Text PostgreSQL can store (no NUL, no lone surrogates), cut to the column's size."""
    text = str(value).replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")[:limit]


def clean_json(value: Any) -> Any:
    """`value` as JSON PostgreSQL can store: strings cleaned, other types as text."""
    if isinstance(value, dict):
        return {clean_text(key, 200): clean_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [clean_json(item) for item in value]
    if value is None or isinstance(value, bool | int) or (
        isinstance(value, float) and math.isfinite(value)
    ):
        return value
    return clean_text(value, 2000)


def record_action(action: str, **fields: Any) -> AuditEvent:
    """Record that `user` (None: the system) did `action` (`<thing>.<verb>`, e.g.
    `process.abort`) on `target` (the fields of `audit_event`). Call it inside the
    transaction that does the action."""
    event = audit_event(action, **fields)
    event.save()
    return event


def audit_event(
    action: str,
    *,
    user=None,
    target: models.Model | None = None,
    summary: str = "",
    detail: dict[str, Any] | None = None,
    object_type: str = "",
    object_id: Any = "",
    object_repr: str = "",
    actor_name: str = "",
) -> AuditEvent:
    """The event `record_action` stores, not yet saved: many actions of one request (a
    batch start) are stored together with `AuditEvent.objects.bulk_create`."""
    request = _current_request.get()
    actor = user if user is not None and getattr(user, "is_authenticated", False) else None
    if target is not None:
        object_type = object_type or target._meta.label_lower
        object_id = object_id or target.pk
        object_repr = object_repr or str(target)
    return AuditEvent(
        actor=actor,
        actor_name=clean_text(actor.get_username() if actor else actor_name, 150),
        action=clean_text(action, 100),
        object_type=clean_text(object_type, 100),
        object_id=clean_text(object_id, 255),
        object_repr=clean_text(object_repr, 200),
        summary=clean_text(summary, 500),
        detail=clean_json(detail or {}),
        client_address=client_address(request) if request is not None else None,
        via=channel(request),
    )


# --- the admin: every add, change and delete of every registered model ----------------------


def admin_summary(message: Any, fallback: str) -> str:
    """The admin's own words for a change ("Changed Note and Product.")."""
    if isinstance(message, list):
        message = json.dumps(message)
    return LogEntry(change_message=message or "").get_change_message() or fallback


class AuditedModelAdminMixin:
    """Records the admin's add/change/delete log entries in the audit trail as well."""

    def log_addition(self, request, obj, message):
        entry = super().log_addition(request, obj, message)
        record_action("admin.add", user=request.user, target=obj,
                      summary=admin_summary(message, "Added."), detail={"changes": message})
        return entry

    def log_change(self, request, obj, message):
        entry = super().log_change(request, obj, message)
        record_action("admin.change", user=request.user, target=obj,
                      summary=admin_summary(message, "Changed."), detail={"changes": message})
        return entry

    def log_deletions(self, request, queryset):
        entries = super().log_deletions(request, queryset)
        for obj in queryset:
            record_action("admin.delete", user=request.user, target=obj, summary="Deleted.")
        return entries


class AuditedAdminSite(admin.AdminSite):
    """The default admin site: each ModelAdmin registered with it, the project's and every
    library's alike, records its edits in the audit trail."""

    def register(self, model_or_iterable, admin_class=None, **options):
        admin_class = admin_class or admin.ModelAdmin
        if not issubclass(admin_class, AuditedModelAdminMixin):
            admin_class = type(
                admin_class.__name__,
                (AuditedModelAdminMixin, admin_class),
                {"__module__": admin_class.__module__},
            )
        return super().register(model_or_iterable, admin_class, **options)


# --- logins ---------------------------------------------------------------------------------


@receiver(user_logged_in, dispatch_uid="audit_login")
def _logged_in(sender, request, user, **kwargs) -> None:
    record_action("auth.login", user=user, target=user, summary="Logged in")


@receiver(user_logged_out, dispatch_uid="audit_logout")
def _logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        record_action("auth.logout", user=user, target=user, summary="Logged out")


@receiver(user_login_failed, dispatch_uid="audit_login_failed")
def _login_failed(sender, credentials, request=None, **kwargs) -> None:
    name = credentials.get("username", "") if isinstance(credentials, dict) else ""
    record_action("auth.login_failed", actor_name=str(name or ""), object_type="auth.user",
                  object_repr=str(name or ""), summary="Wrong username or password")
