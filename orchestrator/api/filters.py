"""Query-parameter filters of the process and workflow lists (django-filter)."""

from __future__ import annotations

import django_filters

from orchestrator.filters import BooleanFilter, StrictFilterSet
from orchestrator.models import (
    Process,
    ProcessStatus,
    Workflow,
    WorkflowTarget,
    WorkflowType,
)


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


class WorkflowFilter(StrictFilterSet):
    type = django_filters.ChoiceFilter(choices=WorkflowType.choices)
    target = django_filters.ChoiceFilter(choices=WorkflowTarget.choices)
    is_task = BooleanFilter()

    class Meta:
        model = Workflow
        fields = ["type", "target", "is_task"]
