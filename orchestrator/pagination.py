"""Counting big lists no further than needed.

An exact `COUNT(*)` reads every row the user may see (34 ms for 50k permitted subscriptions,
more than the page itself). A capped count stops after COUNT_CAP rows, or after the end of
the requested page when that is further, so it costs about as much as fetching the page: below
the cap it is exact, beyond it the list says "more than" instead of a number (the API's
`count_exact` is false and `count` is a lower bound). Paging on past the cap keeps working: the
next page's count reaches to its own end.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet

COUNT_CAP = 1000


def count_up_to(queryset: QuerySet, limit: int) -> int:
    """The number of rows of `queryset`, counting at most `limit` (a LIMIT inside the COUNT;
    no ORDER BY, so PostgreSQL may take the rows in any order and stop early)."""
    return queryset.order_by()[:limit].count()


def exact_bound(end_of_page: int) -> int:
    """Up to how many rows a count is exact when the requested page ends at `end_of_page`."""
    return max(COUNT_CAP, end_of_page)


class CappedPaginator(Paginator):
    """A Paginator whose count is exact up to `exact_up_to` rows (COUNT_CAP, or the end of the
    requested page); beyond, `count` is `exact_up_to + 1` and `more_than` says "more than"."""

    exact_up_to = COUNT_CAP

    def get_page(self, number: Any):
        try:
            wanted = int(float(number))  # as Paginator.validate_number reads it
        except (TypeError, ValueError, OverflowError):
            wanted = 1
        self.exact_up_to = exact_bound(min(max(wanted, 1), 2**31) * self.per_page)
        return super().get_page(number)

    @cached_property
    def count(self) -> int:
        return count_up_to(self.object_list, self.exact_up_to + 1)

    @property
    def more_than(self) -> int | None:
        """The rows there are more than, when the count is not exact (None when it is)."""
        return self.exact_up_to if self.count > self.exact_up_to else None
