"""Pages of the subscriptions app: products, subscriptions, and a subscription's detail with
the workflows usable on it (and why the others are not). Thin views over the selectors and
services; what the user may not view is never listed and is a 404 by id."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from orchestrator import registry
from orchestrator.exceptions import NotFound, OrchestratorError
from orchestrator.filters import BooleanFilter, StrictFilterSet
from orchestrator.models import Workflow
from orchestrator.pagination import CappedPaginator
from orchestrator.permissions import user_may
from orchestrator.views import startable_ids
from subscriptions import selectors, services
from subscriptions.filters import MAX_SEARCH, SubscriptionFilterMethods
from subscriptions.models import Subscription, SubscriptionLifecycle

PAGE_SIZE = 25


class SubscriptionPageFilter(SubscriptionFilterMethods, StrictFilterSet):
    """The list's GET filters; the same names as the API's query parameters."""

    search = django_filters.CharFilter(
        method="filter_search", max_length=MAX_SEARCH, label="Search",
        help_text="Description or customer id",
    )
    product = django_filters.ChoiceFilter(
        method="filter_product", empty_label="any", label="Product"
    )
    status = django_filters.ChoiceFilter(
        choices=SubscriptionLifecycle.choices, empty_label="any", label="Status"
    )
    insync = BooleanFilter(
        label="In sync",
        widget=forms.Select(choices=[("", "any"), ("true", "in sync"), ("false", "out of sync")]),
    )

    class Meta:
        model = Subscription
        fields = ["search", "product", "status", "insync"]

    def __init__(self, *args, products=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.filters["product"].extra["choices"] = [(str(p.pk), p.name) for p in products]


def visible_subscription(request: HttpRequest, pk: Any) -> Subscription:
    try:
        return selectors.visible_subscription(request.user, pk)
    except NotFound as error:
        raise Http404(error.message) from None


@login_required
def product_list(request: HttpRequest) -> HttpResponse:
    """Products with their workflows; a Start button for each create workflow."""
    user = request.user
    products = (
        selectors.products_for_user(user)
        .prefetch_related(
            "fixed_inputs", "product_blocks", selectors.visible_product_workflows(user)
        )
        .order_by("name")
    )
    startable = startable_ids(user, Workflow.objects.filter(target="create"))
    defaults = list(selectors.default_product_workflows(user))
    rows = []
    for product in products:
        own = list(product.workflows.all())
        extra = [w for w in defaults if w.pk not in {o.pk for o in own}]
        workflows = [
            {
                "workflow": workflow,
                "default": workflow in extra,
                "may_start": workflow.target == "create"
                and workflow.pk in startable
                and registry.get_definition(workflow.name) is not None,
            }
            for workflow in sorted([*own, *extra], key=lambda w: (w.target != "create", w.name))
        ]
        rows.append({"product": product, "workflows": workflows})
    return render(request, "subscriptions/product_list.html", {"rows": rows})


@login_required
def subscription_list(request: HttpRequest) -> HttpResponse:
    user = request.user
    products = selectors.products_for_user(user).order_by("name")
    queryset = selectors.subscription_list_rows(user).select_related("product")
    subscription_filter = SubscriptionPageFilter(
        request.GET or None, queryset=queryset, products=products
    )
    page = CappedPaginator(subscription_filter.rows(), PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter": subscription_filter, "page": page, "subscriptions": page.object_list}
    status = 400 if subscription_filter.errors else 200
    return render(request, "subscriptions/subscription_list.html", context, status=status)


@login_required
def subscription_detail(request: HttpRequest, pk) -> HttpResponse:
    user = request.user
    subscription = visible_subscription(request, pk)
    visible = selectors.subscriptions_for_user(user).order_by("description", "pk")
    holders = selectors.holding_processes(subscription)
    visible_process_ids = selectors.visible_process_ids(user, holders)
    workflows = [
        {
            "workflow": workflow,
            "usability": usability,
            "may_start": usability.usable
            and user_may(user, "orchestrator.start_workflow", workflow)
            and registry.get_definition(workflow.name) is not None,
        }
        for workflow, usability in selectors.subscription_workflows(subscription, user)
    ]
    context = {
        "subscription": subscription,
        "instance_values": sorted(subscription.instance_values.items())
        if isinstance(subscription.instance_values, dict)
        else [],
        "depends_on": visible.filter(in_use_by=subscription),
        "in_use_by": visible.filter(depends_on=subscription),
        "processes": selectors.subscription_processes(user, subscription),
        # Holders the user may not view are only said to exist, never named.
        "holders": [p for p in holders if p.pk in visible_process_ids],
        "hidden_holders": any(p.pk not in visible_process_ids for p in holders),
        "out_of_sync_reason": selectors.out_of_sync_reason(subscription, holders, user),
        "workflows": workflows,
        "may_set_in_sync": not subscription.insync
        and user_may(user, "subscriptions.set_in_sync", subscription),
    }
    return render(request, "subscriptions/subscription_detail.html", context)


@require_POST
@login_required
def subscription_set_in_sync(request: HttpRequest, pk) -> HttpResponse:
    """Set in sync again (admins); refused with a message while a process holds it."""
    subscription = visible_subscription(request, pk)
    try:
        services.set_in_sync(subscription=subscription, user=request.user)
    except OrchestratorError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The subscription is in sync again.")
    return redirect("subscription-detail", pk=subscription.pk)
