"""Serializers of the product and subscription API (DESIGN §8).

Output only: every write goes through a service. Component names are explicit and
unique for the OpenAPI schema (each `ref_name` starts with its entity).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from orchestrator.models import Process
from subscriptions.models import FixedInput, Product, Subscription


class FixedInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = FixedInput
        fields = ["name", "value"]
        read_only_fields = fields
        ref_name = "ProductFixedInput"


class ProductSerializer(serializers.ModelSerializer):
    """A product with its type, fixed inputs, blocks and the names of its workflows."""

    product_type = serializers.CharField(source="product_type.name", read_only=True)
    fixed_inputs = FixedInputSerializer(many=True, read_only=True)
    product_blocks = serializers.SerializerMethodField()
    workflows = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = [
            "id",
            "name",
            "description",
            "product_type",
            "status",
            "tag",
            "fixed_inputs",
            "product_blocks",
            "workflows",
            "created_at",
        ]
        read_only_fields = fields
        ref_name = "Product"

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_product_blocks(self, product: Product) -> list[str]:
        # Reads the prefetched rows (the viewset prefetches them): no query per product.
        return [block.name for block in product.product_blocks.all()]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_workflows(self, product: Product) -> list[str]:
        """Its own workflows and those attached to every product (`DEFAULT_PRODUCT_WORKFLOWS`,
        read once per request by the view)."""
        names = {workflow.name for workflow in product.workflows.all()}
        return sorted(names | set(self.context.get("default_workflows", ())))


class ProductBriefSerializer(serializers.ModelSerializer):
    product_type = serializers.CharField(source="product_type.name", read_only=True)

    class Meta:
        model = Product
        fields = ["id", "name", "tag", "product_type"]
        read_only_fields = fields
        ref_name = "ProductBrief"


class SubscriptionBriefSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = ["id", "description"]
        read_only_fields = fields
        ref_name = "SubscriptionBrief"


class SubscriptionProcessSerializer(serializers.ModelSerializer):
    workflow = serializers.CharField(source="workflow.name", read_only=True)

    class Meta:
        model = Process
        fields = ["id", "workflow", "status", "started_at"]
        read_only_fields = fields
        ref_name = "SubscriptionProcess"


class SubscriptionSerializer(serializers.ModelSerializer):
    """A subscription in a list."""

    product = ProductBriefSerializer(read_only=True)

    class Meta:
        model = Subscription
        fields = [
            "id",
            "description",
            "customer_id",
            "product",
            "status",
            "insync",
            "version",
            "start_date",
            "end_date",
            "created_at",
        ]
        read_only_fields = fields
        ref_name = "Subscription"


class SubscriptionDetailSerializer(SubscriptionSerializer):
    """A subscription with its values, its relations both ways, its processes and, when it
    is out of sync, why (and which open processes hold it).

    The relations and the processes list only what the user may view; the view passes
    them in the context.
    """

    instance_values = serializers.JSONField(read_only=True)
    depends_on = serializers.SerializerMethodField()
    in_use_by = serializers.SerializerMethodField()
    processes = serializers.SerializerMethodField()
    out_of_sync_reason = serializers.SerializerMethodField(
        help_text="Why the subscription is out of sync; null while it is in sync."
    )
    held_by = serializers.SerializerMethodField(
        help_text="The open processes that hold the subscription out of sync."
    )

    class Meta(SubscriptionSerializer.Meta):
        fields = [
            *SubscriptionSerializer.Meta.fields,
            "note",
            "instance_values",
            "depends_on",
            "in_use_by",
            "processes",
            "out_of_sync_reason",
            "held_by",
        ]
        read_only_fields = fields
        ref_name = "SubscriptionDetail"

    @extend_schema_field(SubscriptionBriefSerializer(many=True))
    def get_depends_on(self, subscription: Subscription) -> list[dict[str, Any]]:
        return SubscriptionBriefSerializer(self.context.get("depends_on", []), many=True).data

    @extend_schema_field(SubscriptionBriefSerializer(many=True))
    def get_in_use_by(self, subscription: Subscription) -> list[dict[str, Any]]:
        return SubscriptionBriefSerializer(self.context.get("in_use_by", []), many=True).data

    @extend_schema_field(SubscriptionProcessSerializer(many=True))
    def get_processes(self, subscription: Subscription) -> list[dict[str, Any]]:
        return SubscriptionProcessSerializer(self.context.get("processes", []), many=True).data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_out_of_sync_reason(self, subscription: Subscription) -> str | None:
        return self.context.get("out_of_sync_reason")

    @extend_schema_field(SubscriptionProcessSerializer(many=True))
    def get_held_by(self, subscription: Subscription) -> list[dict[str, Any]]:
        return SubscriptionProcessSerializer(self.context.get("held_by", []), many=True).data


class SubscriptionWorkflowSerializer(serializers.Serializer):
    """A workflow that applies to the subscription, whether it may start now and why not."""

    name = serializers.CharField(source="workflow.name")
    description = serializers.CharField(source="workflow.description")
    target = serializers.CharField(source="workflow.target")
    is_task = serializers.BooleanField(source="workflow.is_task")
    usable = serializers.BooleanField(source="usability.usable")
    reason = serializers.CharField(
        source="usability.reason", allow_null=True, help_text="Why not usable; null when usable."
    )

    class Meta:
        ref_name = "SubscriptionWorkflow"
