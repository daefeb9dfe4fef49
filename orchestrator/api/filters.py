"""Query-parameter filters of the process and workflow lists (django-filter)."""

from __future__ import annotations

import logging

import django_filters
from django import forms
from django.db.models import QuerySet

from orchestrator import selectors
from orchestrator.filters import BooleanFilter, StrictFilterSet
from orchestrator.models import (
    AuditEvent,
    Process,
    ProcessLog,
    ProcessStatus,
    WorkerHeartbeat,
    Workflow,
    WorkflowTarget,
    WorkflowType,
)
from orchestrator.selectors import WORKER_STATUSES


class ProcessFilter(StrictFilterSet):
    workflow = django_filters.CharFilter(
        field_name="workflow__name", max_length=255, help_text="Workflow name."
    )
    status = django_filters.ChoiceFilter(choices=ProcessStatus.choices)
    tag = django_filters.CharFilter(
        field_name="tag_rows__name", max_length=255, help_text="A run tag, e.g. branch:main."
    )
    is_task = BooleanFilter()
    parent = django_filters.UUIDFilter(field_name="parent_id", help_text="Parent process id.")
    subscription = django_filters.UUIDFilter(
        method="filter_subscription", help_text="Subscription id: the processes that touched it."
    )

    class Meta:
        model = Process
        fields = ["workflow", "status", "tag", "is_task", "parent", "subscription"]

    def filter_subscription(self, queryset, name, value):
        if not value:
            return queryset
        return queryset.filter(subscriptions=value)


LOG_LEVELS = [(name, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")]


class ProcessLogFilter(StrictFilterSet):
    """Filters of a run log (`GET /api/processes/{id}/logs/`): a cursor and what to keep."""

    after = django_filters.NumberFilter(
        field_name="id", lookup_expr="gt", min_value=0,
        help_text="Only lines after this line id (the `id` of the last line you have): "
                  "poll with it to follow a running process.",
    )
    after.field_class = forms.IntegerField
    since = django_filters.IsoDateTimeFilter(
        field_name="created_at", lookup_expr="gte",
        help_text="Only lines logged at or after this time (ISO 8601).",
    )
    level = django_filters.ChoiceFilter(
        choices=LOG_LEVELS, method="filter_level", help_text="This level or above."
    )
    step = django_filters.CharFilter(max_length=255, help_text="A step or task run name.")
    task_key = django_filters.CharFilter(max_length=255, help_text="A task call's key.")

    class Meta:
        model = ProcessLog
        fields = ["after", "since", "level", "step", "task_key"]

    def filter_level(self, queryset, name, value):
        return queryset.filter(level__gte=logging.getLevelName(value)) if value else queryset


class WorkflowFilter(StrictFilterSet):
    """The catalogue's filters, shared by the API and the workflows page."""

    type = django_filters.ChoiceFilter(choices=WorkflowType.choices, empty_label="any")
    target = django_filters.ChoiceFilter(choices=WorkflowTarget.choices, empty_label="any")
    tag = django_filters.CharFilter(
        method="filter_tag", max_length=255, label="Tag", help_text="A workflow tag."
    )
    is_task = BooleanFilter(
        label="Tasks",
        widget=forms.Select(choices=[("", "any"), ("true", "tasks only"), ("false", "workflows")]),
    )

    class Meta:
        model = Workflow
        fields = ["type", "target", "tag", "is_task"]

    def filter_tag(self, queryset, name, value):
        return selectors.with_workflow_tag(queryset, value) if value else queryset


AUDIT_CHANNELS = [("page", "page"), ("api", "api"), ("admin", "admin"), ("system", "system")]


class IPAddressFilter(django_filters.Filter):
    field_class = forms.GenericIPAddressField


class AuditEventFilter(StrictFilterSet):
    """Filters of the audit trail, shared by `/api/audit/` and the audit page."""

    actor = django_filters.CharFilter(
        field_name="actor_name", max_length=150, label="Who", help_text="The username (exact)."
    )
    action = django_filters.CharFilter(
        method="filter_action", max_length=100, label="Action",
        help_text="An action (`process.abort`), or all of a kind with a trailing dot "
                  "(`process.`).",
    )
    object_type = django_filters.CharFilter(
        max_length=100, label="Object type",
        help_text="`app_label.model`, e.g. orchestrator.process.",
    )
    object_id = django_filters.CharFilter(
        max_length=255, label="Object id", help_text="The object's id."
    )
    via = django_filters.ChoiceFilter(
        choices=AUDIT_CHANNELS, label="From", help_text="Where it came from."
    )
    client_address = IPAddressFilter(label="Client address", help_text="The client's IP address.")
    since = django_filters.IsoDateTimeFilter(
        field_name="at", lookup_expr="gte", label="Since", help_text="From this time on (ISO 8601)."
    )
    until = django_filters.IsoDateTimeFilter(
        field_name="at", lookup_expr="lt", label="Until", help_text="Before this time (ISO 8601)."
    )

    class Meta:
        model = AuditEvent
        fields = ["actor", "action", "object_type", "object_id", "via", "client_address",
                  "since", "until"]

    def filter_action(self, queryset, name, value):
        if not value:
            return queryset
        if value.endswith("."):
            return queryset.filter(action__startswith=value)
        return queryset.filter(action=value)


class WorkerFilter(StrictFilterSet):
    """`/api/workers/?status=alive` (or `stopped`, `lost`) and `?queue=core`."""

    status = django_filters.ChoiceFilter(
        choices=[(status, status) for status in WORKER_STATUSES],
        help_text="alive: heard from within three heartbeats; stopped: shut down cleanly; "
                  "lost: silent since (killed, hung or cut off).",
    )
    queue = django_filters.CharFilter(
        method="filter_queue", max_length=255, help_text="Workers consuming from this queue."
    )

    class Meta:
        model = WorkerHeartbeat
        fields = ["status", "queue"]

    def filter_queue(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        names = [row.name for row in queryset if value in (row.queues or [])]
        return queryset.filter(name__in=names)
