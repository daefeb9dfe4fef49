"""Query-parameter filters of the product and subscription lists, shared by the API and
the pages (the pages subclass them for their widgets). Same names as DESIGN §8."""

from __future__ import annotations

import django_filters
from django.db.models import Q, QuerySet

from orchestrator.filters import BooleanFilter, StrictFilterSet
from subscriptions.models import Product, ProductStatus, Subscription, SubscriptionLifecycle
from subscriptions.selectors import product_lookup

MAX_SEARCH = 255


def product_filter(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """`product` names a product by id or by name."""
    if not value:
        return queryset
    return queryset.filter(product__in=Product.objects.filter(product_lookup(value)))


def search_filter(queryset: QuerySet, name: str, value: str) -> QuerySet:
    """`search`: a piece of the description or of the customer id, case-insensitive."""
    value = value.strip()
    if not value:
        return queryset
    return queryset.filter(Q(description__icontains=value) | Q(customer_id__icontains=value))


class SubscriptionFilterMethods:
    """The `product` and `search` filters' methods, shared by the API's and the page's set."""

    def filter_product(self, queryset, name, value):
        return product_filter(queryset, name, value)

    def filter_search(self, queryset, name, value):
        return search_filter(queryset, name, value)


class SubscriptionFilter(SubscriptionFilterMethods, StrictFilterSet):
    product = django_filters.CharFilter(
        method="filter_product", max_length=100, help_text="Product id or name."
    )
    status = django_filters.ChoiceFilter(choices=SubscriptionLifecycle.choices)
    insync = BooleanFilter()
    customer_id = django_filters.CharFilter(max_length=100, help_text="Exact customer id.")
    search = django_filters.CharFilter(
        method="filter_search",
        max_length=MAX_SEARCH,
        help_text="Part of the description or of the customer id (case-insensitive).",
    )

    class Meta:
        model = Subscription
        fields = ["product", "status", "insync", "customer_id", "search"]


class ProductFilter(StrictFilterSet):
    status = django_filters.ChoiceFilter(choices=ProductStatus.choices)
    tag = django_filters.CharFilter(max_length=50)
    product_type = django_filters.CharFilter(
        field_name="product_type__name", max_length=100, help_text="Product type name."
    )

    class Meta:
        model = Product
        fields = ["status", "tag", "product_type"]
