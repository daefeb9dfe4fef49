"""Products (what is sold or run) and subscriptions (each provisioned instance) — DESIGN §5."""

from __future__ import annotations

import uuid

from django.db import models
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from orchestrator.models import Process, Workflow


class ProductStatus(models.TextChoices):
    ACTIVE = "active"
    PRE_PRODUCTION = "pre production"
    PHASE_OUT = "phase out"
    END_OF_LIFE = "end of life"


class ProductType(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ProductBlock(models.Model):
    """A named group of resource fields a product is built from (e.g. NodeBlock)."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    tag = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    product_type = models.ForeignKey(ProductType, on_delete=models.PROTECT, related_name="products")
    status = models.CharField(
        max_length=20, choices=ProductStatus.choices, default=ProductStatus.ACTIVE
    )
    tag = models.CharField(max_length=50, blank=True, db_index=True)
    product_blocks = models.ManyToManyField(ProductBlock, blank=True, related_name="products")
    workflows = models.ManyToManyField(
        Workflow, blank=True, related_name="products",
        help_text="Workflows that may run on this product's subscriptions.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class FixedInput(models.Model):
    """A value fixed per product (e.g. speed=10G), not chosen per subscription."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="fixed_inputs")
    name = models.CharField(max_length=100)
    value = models.CharField(max_length=255)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["product", "name"], name="unique_fixed_input")
        ]

    def __str__(self) -> str:
        return f"{self.name}={self.value}"


class SubscriptionLifecycle(models.TextChoices):
    INITIAL = "initial"
    PROVISIONING = "provisioning"
    ACTIVE = "active"
    DISABLED = "disabled"
    TERMINATED = "terminated"


class Subscription(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="subscriptions")
    customer_id = models.CharField(max_length=100, db_index=True)
    description = models.CharField(max_length=255, db_index=True)
    note = models.TextField(blank=True)
    status = models.CharField(
        max_length=20,
        choices=SubscriptionLifecycle.choices,
        default=SubscriptionLifecycle.INITIAL,
        db_index=True,
    )
    insync = models.BooleanField(default=False, db_index=True)
    start_date = models.DateTimeField(null=True, blank=True)
    end_date = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)
    instance_values = models.JSONField(
        default=dict, blank=True, help_text="The domain model's fields (product block values)."
    )
    depends_on = models.ManyToManyField(
        "self", symmetrical=False, blank=True, related_name="in_use_by"
    )
    processes = models.ManyToManyField(
        Process, through="ProcessSubscription", related_name="subscriptions", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["product", "status"]),
            models.Index(fields=["-created_at", "-id"], name="subscription_newest_first"),
        ]
        permissions = [("set_in_sync", "Can set a subscription in sync again")]

    def __str__(self) -> str:
        return self.description or str(self.id)


class ProcessSubscription(models.Model):
    """Which processes touched which subscriptions (kept for audit)."""

    process = models.ForeignKey(Process, on_delete=models.CASCADE)
    subscription = models.ForeignKey(Subscription, on_delete=models.CASCADE)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["process", "subscription"], name="unique_process_subscription"
            )
        ]

    def __str__(self) -> str:
        return f"{self.process_id} → {self.subscription_id}"


class SubscriptionUserObjectPermission(UserObjectPermissionBase):
    """Per-object grants on subscriptions with a real foreign key (django-guardian's
    direct permission model): lists filter by a join on an index, not a text-cast id."""

    content_object = models.ForeignKey(Subscription, on_delete=models.CASCADE)


class SubscriptionGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Subscription, on_delete=models.CASCADE)
