"""The product and subscription API (DESIGN §8): thin views over selectors and services.

Every list and object comes from `products_for_user` / `subscriptions_for_user`, so what the
user may not view is never listed and is a 404 by id. Writes (set in sync) go through
`subscriptions.services`, which checks the permission (403) and the rules (409).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from orchestrator.api.serializers import ApiErrorSerializer
from orchestrator.api.views import CappedCountPagination, JSONOnlyMixin, Pagination
from subscriptions import selectors, services
from subscriptions.api.serializers import (
    ProductSerializer,
    SubscriptionDetailSerializer,
    SubscriptionSerializer,
    SubscriptionWorkflowSerializer,
)
from subscriptions.filters import ProductFilter, SubscriptionFilter
from subscriptions.models import Product, Subscription

ERRORS = {
    403: OpenApiResponse(ApiErrorSerializer, description="Not allowed"),
    404: OpenApiResponse(ApiErrorSerializer, description="Not found"),
    409: OpenApiResponse(ApiErrorSerializer, description="Refused while a process holds it"),
}


def with_product_relations(queryset: QuerySet[Product], user) -> QuerySet[Product]:
    """What ProductSerializer reads, fetched up front: constant queries per request (the
    workflows as far as `user` may view them)."""
    return queryset.select_related("product_type").prefetch_related(
        "fixed_inputs", "product_blocks", selectors.visible_product_workflows(user)
    )


@extend_schema_view(
    list=extend_schema(summary="Products the user may view"),
    retrieve=extend_schema(
        summary="One product, by id or name",
        responses={200: ProductSerializer, 404: ERRORS[404]},
    ),
)
class ProductViewSet(JSONOnlyMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Product.objects.all()
    serializer_class = ProductSerializer
    pagination_class = Pagination
    filterset_class = ProductFilter
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Product]:
        if getattr(self, "swagger_fake_view", False):
            return Product.objects.none()
        user = self.request.user
        return with_product_relations(selectors.products_for_user(user), user).order_by("name")

    def get_object(self) -> Product:
        product = selectors.visible_product(self.request.user, self.kwargs["pk"])
        return with_product_relations(Product.objects.all(), self.request.user).get(pk=product.pk)

    def get_serializer_context(self) -> dict[str, Any]:
        context = super().get_serializer_context()
        if not getattr(self, "swagger_fake_view", False):
            context["default_workflows"] = list(
                selectors.default_product_workflows(self.request.user).values_list(
                    "name", flat=True
                )
            )
        return context


@extend_schema_view(
    list=extend_schema(summary="Subscriptions the user may view, newest first"),
    retrieve=extend_schema(
        summary="A subscription with its values, relations, processes and sync state",
        responses={200: SubscriptionDetailSerializer, 404: ERRORS[404]},
    ),
)
class SubscriptionViewSet(
    JSONOnlyMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    queryset = Subscription.objects.all()
    serializer_class = SubscriptionSerializer
    pagination_class = CappedCountPagination
    filterset_class = SubscriptionFilter
    lookup_value_regex = "[^/]+"

    def get_queryset(self) -> QuerySet[Subscription]:
        if getattr(self, "swagger_fake_view", False):
            return Subscription.objects.none()
        return selectors.subscription_list_rows(self.request.user).select_related(
            "product__product_type"
        )

    def get_serializer_class(self):
        if self.action == "list":
            return SubscriptionSerializer
        if self.action == "workflows":
            return SubscriptionWorkflowSerializer
        return SubscriptionDetailSerializer

    def get_object(self) -> Subscription:
        return selectors.visible_subscription(self.request.user, self.kwargs["pk"])

    def detail_response(self, subscription: Subscription) -> Response:
        user = self.request.user
        visible = selectors.subscriptions_for_user(user).order_by("description", "pk")
        holders = selectors.holding_processes(subscription)
        visible_holders = selectors.visible_process_ids(user, holders)
        context = {
            **self.get_serializer_context(),
            "depends_on": visible.filter(in_use_by=subscription),
            "in_use_by": visible.filter(depends_on=subscription),
            "processes": selectors.subscription_processes(user, subscription),
            "out_of_sync_reason": selectors.out_of_sync_reason(subscription, holders, user),
            "held_by": [p for p in holders if p.pk in visible_holders],
        }
        return Response(SubscriptionDetailSerializer(subscription, context=context).data)

    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.detail_response(self.get_object())

    @extend_schema(
        summary="The workflows of the subscription's product: usable now, or why not",
        responses={200: SubscriptionWorkflowSerializer(many=True), 404: ERRORS[404]},
    )
    @action(detail=True, methods=["get"], pagination_class=None, filterset_class=None)
    def workflows(self, request: Request, pk: str | None = None) -> Response:
        subscription = self.get_object()
        rows = [
            {"workflow": workflow, "usability": usability}
            for workflow, usability in selectors.subscription_workflows(subscription, request.user)
        ]
        return Response(SubscriptionWorkflowSerializer(rows, many=True).data)

    @extend_schema(
        summary="Set the subscription in sync again (admin; refused while a process holds it)",
        request=None,
        responses={200: SubscriptionDetailSerializer, **ERRORS},
    )
    @action(detail=True, methods=["post"], url_path="set_in_sync", filterset_class=None)
    def set_in_sync(self, request: Request, pk: str | None = None) -> Response:
        subscription = services.set_in_sync(subscription=self.get_object(), user=request.user)
        return self.detail_response(selectors.visible_subscription(request.user, subscription.pk))
