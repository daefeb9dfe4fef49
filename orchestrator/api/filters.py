"""Query-parameter filters of the process and workflow lists (django-filter)."""

from __future__ import annotations

import uuid

import django_filters

from orchestrator.models import (
    Process,
    ProcessStatus,
    Workflow,
    WorkflowTarget,
    WorkflowType,
)


class ProcessFilter(django_filters.FilterSet):
    workflow = django_filters.CharFilter(
        field_name="workflow__name", max_length=255, help_text="Workflow name."
    )
    status = django_filters.ChoiceFilter(choices=ProcessStatus.choices)
    tag = django_filters.CharFilter(
        field_name="tag_rows__name", max_length=255, help_text="A run tag, e.g. branch:main."
    )
    is_task = django_filters.BooleanFilter()
    parent = django_filters.UUIDFilter(field_name="parent_id", help_text="Parent process id.")
    subscription = django_filters.CharFilter(
        method="filter_subscription",
        max_length=255,
        help_text="Subscription id: the processes that touched it.",
    )

    class Meta:
        model = Process
        fields = ["workflow", "status", "tag", "is_task", "parent", "subscription"]

    def filter_subscription(self, queryset, name, value):
        if not value:
            return queryset
        try:
            subscription_id = uuid.UUID(value)
        except ValueError:
            return queryset.none()  # not an id: no subscription, so no process touched it
        return queryset.filter(subscriptions=subscription_id)


class WorkflowFilter(django_filters.FilterSet):
    type = django_filters.ChoiceFilter(choices=WorkflowType.choices)
    target = django_filters.ChoiceFilter(choices=WorkflowTarget.choices)
    is_task = django_filters.BooleanFilter()

    class Meta:
        model = Workflow
        fields = ["type", "target", "is_task"]
