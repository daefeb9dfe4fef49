"""Small presentation helpers for the engine's templates."""

from __future__ import annotations

import datetime
import json
from typing import Any

from django import template
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.html import format_html
from django.utils.timezone import template_localtime

register = template.Library()

MAX_VALUE_CHARS = 400
# The markup of status_badge and time_tag, for lists that write whole rows in one format_html.
STATUS_BADGE_HTML = '<span class="badge badge-{}">{}</span>'
TIME_HTML = '<time datetime="{}">{}</time>'
TIME_FORMAT = "%Y-%m-%d %H:%M"


@register.filter
def as_json(value: Any, limit: int = MAX_VALUE_CHARS) -> str:
    """A state value as compact JSON, cut at `limit` characters (autoescaped by the template)."""
    text = json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, ensure_ascii=False)
    limit = int(limit)
    return text if len(text) <= limit else text[: limit - 1] + "…"


@register.filter
def entries(mapping: Any) -> list[tuple[Any, Any]]:
    """A dict's (key, value) pairs for `{% for key, value in d|entries %}`: `d.items` in a
    template looks up a key named "items" first, so a state or outputs with such a key (or
    "keys", "values") broke the page."""
    return list(mapping.items()) if isinstance(mapping, dict) else []


@register.filter
def as_pretty_json(value: Any) -> str:
    return json.dumps(value, cls=DjangoJSONEncoder, sort_keys=True, indent=2, ensure_ascii=False)


@register.filter
def duration(step) -> str:
    """How long a step took, compactly ("12 ms", "3.4 s", "2 min 5 s")."""
    started, completed = getattr(step, "started_at", None), getattr(step, "completed_at", None)
    if not isinstance(started, datetime.datetime) or not isinstance(completed, datetime.datetime):
        return ""
    seconds = max((completed - started).total_seconds(), 0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes} min {rest} s"


@register.simple_tag
def status_badge(status: str) -> str:
    # format_html, not an inclusion template: lists render one per row (a template costs
    # ten times as much).
    return format_html(STATUS_BADGE_HTML, status, str(status).replace("_", " "))


@register.simple_tag
def time_tag(moment: datetime.datetime | None) -> str:
    """`<time datetime="{{ moment|date:'c' }}">{{ moment|date:"Y-m-d H:i" }}</time>`, written
    as those filters write it in a fraction of their time (long lists render one per row)."""
    if moment is None:
        return ""
    moment = template_localtime(moment)
    return format_html(TIME_HTML, moment.isoformat(), moment.strftime(TIME_FORMAT))


@register.simple_tag(takes_context=True)
def nav_class(context, prefix: str) -> str:
    """`active` for the navigation link of the section the current page belongs to."""
    request = context.get("request")
    path = getattr(request, "path", "")
    if prefix == "/":
        return "active" if path == "/" else ""
    return "active" if path.startswith(prefix) else ""


@register.filter
def relative(moment: datetime.datetime | None) -> str:
    """"20 seconds ago", "in 3 hours, 5 minutes": seconds under a minute, else Django's words."""
    from django.utils import timezone
    from django.utils.timesince import timesince, timeuntil

    if not isinstance(moment, datetime.datetime):
        return ""
    seconds = (moment - timezone.now()).total_seconds()
    if abs(seconds) < 60:
        count = max(int(abs(seconds)), 1)
        text = f"{count} second{'s' if count != 1 else ''}"
        return f"in {text}" if seconds > 0 else f"{text} ago"
    return f"in {timeuntil(moment)}" if seconds > 0 else f"{timesince(moment)} ago"


@register.filter
def cron_words(expression: str) -> str:
    """A cron expression in words ("At 02:00"), for the catalogue's schedule column."""
    from orchestrator.schedules import cron_in_words

    return cron_in_words(expression) if expression else ""
