"""Form fields of the subscription domain for workflow input forms."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet

from orchestrator.forms import VisibleModelChoiceField, VisibleModelMultipleChoiceField
from subscriptions.models import Subscription


def subscription_label(subscription: Subscription) -> str:
    return f"{subscription.description} [{subscription.customer_id}]"


class SubscriptionChoiceField(VisibleModelChoiceField):
    """One subscription of `queryset` (default: all) that the user filling in the form may
    view; its id lands in the state. A hidden one is refused like an unknown one."""

    def __init__(self, queryset: QuerySet[Subscription] | None = None, **kwargs: Any) -> None:
        super().__init__(Subscription.objects.all() if queryset is None else queryset, **kwargs)

    def label_from_instance(self, obj: Subscription) -> str:
        return subscription_label(obj)


class SubscriptionMultipleChoiceField(VisibleModelMultipleChoiceField):
    """Several subscriptions the user may view; their ids land in the state as a list."""

    def __init__(self, queryset: QuerySet[Subscription] | None = None, **kwargs: Any) -> None:
        super().__init__(Subscription.objects.all() if queryset is None else queryset, **kwargs)

    def label_from_instance(self, obj: Subscription) -> str:
        return subscription_label(obj)
