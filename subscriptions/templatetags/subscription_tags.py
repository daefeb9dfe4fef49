"""The subscriptions list's rows, written in Python as Django's admin writes its change list
rows (`items_for_result`): in the template, the engine's cost per node was most of the page's
time at 100 rows (~0.25 ms a row), and that page must answer within 100 ms while workers keep
both cores busy (bench/subscriptions_list.py). One `format_html` per row, one `reverse` per
list."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django import template
from django.urls import reverse
from django.utils.html import format_html_join
from django.utils.safestring import SafeString
from django.utils.timezone import template_localtime

from orchestrator.templatetags.orchestrator_tags import STATUS_BADGE_HTML, TIME_FORMAT, TIME_HTML
from subscriptions.models import Subscription

register = template.Library()

# status_badge's and time_tag's markup inlined: each format_html call escapes its arguments
# again, and a row had three.
ROW = (
    '<tr><td><a href="{}">{}</a> <span class="muted mono">{}</span></td>'
    f'<td>{{}}</td><td class="mono">{{}}</td><td>{STATUS_BADGE_HTML}</td>'
    '<td><span class="badge badge-{}">{}</span></td><td>{}</td>'
    f'<td>{TIME_HTML}</td></tr>'
)
PLACEHOLDER = str(uuid.UUID(int=0))


@register.simple_tag
def subscription_rows(subscriptions: Iterable[Subscription]) -> SafeString:
    """One `<tr>` per subscription: description (linked to its page) with the short id,
    product, customer, status, in sync, version, created."""
    detail_url = reverse("subscription-detail", args=[PLACEHOLDER])

    def cells(subscription: Subscription) -> tuple:
        pk = str(subscription.pk)
        created = template_localtime(subscription.created_at)
        return (
            detail_url.replace(PLACEHOLDER, pk), subscription.description, pk[:8],
            subscription.product.name, subscription.customer_id,
            subscription.status, subscription.status.replace("_", " "),
            *(("insync", "in sync") if subscription.insync else ("outofsync", "out of sync")),
            subscription.version,
            created.isoformat(), created.strftime(TIME_FORMAT),
        )

    return format_html_join("\n", ROW, (cells(subscription) for subscription in subscriptions))
