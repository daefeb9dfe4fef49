"""Query-parameter filters that read every value they are given, or say which they could not.

django-filter quietly drops a value its field turns into "nothing": `?is_task=maybe` became
"no filter", so a typo listed every process. Here a malformed value is an error naming its
filter: a 400 on the API (`StrictFilterBackend`, the project's default filter backend, for
every filter set of every app), and on a page the error is shown and nothing is listed
(`StrictFilterSet.rows`).
"""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from rest_framework.exceptions import ValidationError

UNREAD = "Not a value this filter can read."


class StrictBooleanField(forms.NullBooleanField):
    """`true` or `false` (`1`/`0` too, any case), or nothing; anything else is an error."""

    widget = forms.TextInput

    def to_python(self, value: Any) -> bool | None:
        if value in self.empty_values:
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Enter true or false.", code="invalid")

    def validate(self, value: bool | None) -> None:
        return None


class BooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


def unread_values(filterset: django_filters.FilterSet) -> dict[str, list[str]]:
    """The filters given a non-blank value that their field read as nothing, by name.

    Run after the form validated: a field that raised already has its own error.
    """
    cleaned = getattr(filterset.form, "cleaned_data", {})
    unread: dict[str, list[str]] = {}
    for name in filterset.filters:
        if name not in filterset.data or name not in cleaned:
            continue
        raw = filterset.data.get(name)
        if isinstance(raw, str) and raw.strip() and cleaned[name] in (None, "", [], ()):
            unread[name] = [UNREAD]
    return unread


class StrictFilterSet(django_filters.FilterSet):
    """A FilterSet whose malformed values are errors naming the filter (see module doc)."""

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": BooleanFilter},
        models.NullBooleanField: {"filter_class": BooleanFilter},
    }

    def is_valid(self) -> bool:
        if not super().is_valid():
            return False
        for name, problems in unread_values(self).items():
            for problem in problems:
                self.form.add_error(name, problem)
        return not self.form.errors

    def rows(self) -> QuerySet:
        """What a page lists: everything unfiltered, the matches, or nothing when a filter
        value is malformed (the page shows the form's errors instead)."""
        if self.is_bound and not self.is_valid():
            return self.queryset.none()
        return self.qs


class StrictFilterBackend(DjangoFilterBackend):
    """The API's filter backend: a malformed filter value is a 400 naming the filter, for
    filter sets of any base class (and `filterset_fields` get a `StrictFilterSet`)."""

    filterset_base = StrictFilterSet

    def filter_queryset(self, request, queryset: QuerySet, view) -> QuerySet:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        valid = filterset.is_valid()
        errors = {name: list(problems) for name, problems in filterset.errors.items()}
        if valid:
            errors.update(unread_values(filterset))
        if errors:
            raise ValidationError(errors)
        return filterset.qs
