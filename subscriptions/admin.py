"""Products and subscriptions in the Django admin.

Products, their types and blocks are definitions admins manage here. Subscriptions come from
create workflows and are changed by workflows: the admin may correct their data (each save is a
new version) but never adds or deletes them, never edits `insync` directly, and sets one in sync
again only through `subscriptions.services.set_in_sync`, one object at a time, reporting each
refusal instead of failing the whole request.
"""

from __future__ import annotations

import logging

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied

from orchestrator.exceptions import OrchestratorError
from orchestrator.permissions import user_may
from subscriptions import selectors, services
from subscriptions.models import FixedInput, Product, ProductBlock, ProductType, Subscription

logger = logging.getLogger(__name__)


@admin.register(ProductType)
class ProductTypeAdmin(admin.ModelAdmin):
    list_display = ("name", "description")
    search_fields = ("name",)


@admin.register(ProductBlock)
class ProductBlockAdmin(admin.ModelAdmin):
    list_display = ("name", "tag", "description")
    list_filter = ("tag",)
    search_fields = ("name", "tag")


class FixedInputInline(admin.TabularInline):
    model = FixedInput
    extra = 0


class ProductAdminForm(forms.ModelForm):
    class Meta:
        model = Product
        fields = ["name", "description", "product_type", "status", "tag", "product_blocks",
                  "workflows"]

    def clean(self) -> dict:
        cleaned = super().clean()
        workflows = cleaned.get("workflows")
        if workflows is not None:
            self.instance.name = cleaned.get("name") or self.instance.name
            refusal = selectors.workflow_link_refusal(self.instance, list(workflows))
            if refusal:
                self.add_error("workflows", refusal)
        return cleaned


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    form = ProductAdminForm
    list_display = ("name", "product_type", "status", "tag", "created_at")
    list_filter = ("status", "product_type", "tag")
    search_fields = ("name", "tag", "description")
    list_select_related = ("product_type",)
    filter_horizontal = ("workflows", "product_blocks")
    inlines = [FixedInputInline]


class SubscriptionAdminForm(forms.ModelForm):
    class Meta:
        model = Subscription
        fields = ["description", "product", "customer_id", "status", "start_date", "end_date",
                  "note", "instance_values", "depends_on"]

    def clean_product(self) -> Product:
        product = self.cleaned_data["product"]
        if self.instance.pk and product.pk != self.instance.product_id:
            current = Subscription.objects.select_related("product__product_type").get(
                pk=self.instance.pk
            )
            refusal = selectors.product_change_refusal(current, product)
            if refusal:
                raise forms.ValidationError(refusal)
        return product


@admin.register(Subscription)
class SubscriptionAdmin(admin.ModelAdmin):
    form = SubscriptionAdminForm
    list_display = ("description", "product", "customer_id", "status", "insync", "version")
    list_filter = ("product", "status", "insync")
    search_fields = ("description", "customer_id", "id")
    list_select_related = ("product",)
    date_hierarchy = "created_at"
    autocomplete_fields = ("product", "depends_on")
    readonly_fields = ("id", "version", "insync", "created_at")
    fields = (
        "id",
        "description",
        "product",
        "customer_id",
        "status",
        "insync",
        "version",
        "start_date",
        "end_date",
        "note",
        "instance_values",
        "depends_on",
        "created_at",
    )
    actions = ["set_in_sync_selected"]

    def has_add_permission(self, request):
        return False  # subscriptions are made by create workflows

    def has_delete_permission(self, request, obj=None):
        return False  # kept, like the processes that touched them, for audit

    def has_set_in_sync_permission(self, request):
        return user_may(request.user, "subscriptions.set_in_sync")

    def save_model(self, request, obj, form, change):
        if change and form.changed_data:
            obj.version += 1  # every change of data is a new version (stale forms are refused)
        super().save_model(request, obj, form, change)

    @admin.action(description="Set in sync", permissions=["set_in_sync"])
    def set_in_sync_selected(self, request, queryset):
        done = 0
        for subscription in queryset:
            try:
                services.set_in_sync(subscription=subscription, user=request.user)
            except (OrchestratorError, PermissionDenied) as error:
                message = getattr(error, "message", None) or str(error) or "not allowed"
                self.message_user(request, f"{subscription}: {message}", messages.ERROR)
            except Exception as error:  # noqa: BLE001 - one object's failure must not end the rest
                logger.exception("set in sync failed for %s", subscription.pk)
                self.message_user(
                    request, f"{subscription}: unexpected error: {error}", messages.ERROR
                )
            else:
                done += 1
        if done:
            self.message_user(request, f"Set {done} subscription(s) in sync.", messages.SUCCESS)
