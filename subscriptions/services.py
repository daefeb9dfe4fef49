"""Writes on products and subscriptions, called by the engine, pages, API and admin."""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from orchestrator.audit import record_action
from orchestrator.exceptions import Conflict, FormInvalid, NotFound
from orchestrator.models import Process, Workflow
from orchestrator.permissions import require
from subscriptions.models import ProcessSubscription, Product, Subscription
from subscriptions.selectors import (
    SINGLE_WORKFLOW_TARGETS,
    SUBSCRIPTION_TARGETS,
    SubscriptionFacts,
    create_refusal,
    describe_processes,
    open_processes,
    workflow_link_refusal,
    workflow_usability,
)


def get_subscription(subscription_id: Any) -> Subscription:
    try:
        return Subscription.objects.select_related("product").get(pk=subscription_id)
    except (Subscription.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Unknown subscription {subscription_id!r}") from None
    except Exception as error:  # a malformed UUID raises ValidationError
        if type(error).__name__ == "ValidationError":
            raise NotFound(f"Unknown subscription {subscription_id!r}") from None
        raise


def check_version(subscription: Subscription, pages: list[Any]) -> None:
    """A form filled against an older version of the subscription is refused."""
    given = pages[0].get("version") if pages and isinstance(pages[0], dict) else None
    if given in (None, ""):
        return
    try:
        given_version = int(given)
    except (TypeError, ValueError):
        raise FormInvalid("version must be an integer", {"version": ["Not an integer."]}) from None
    if given_version != subscription.version:
        message = (
            f"Stale data: given version {given_version} does not match the current "
            f"version {subscription.version}"
        )
        raise FormInvalid(message, {"version": [message]})


def reserve_for_process(
    *, workflow: Workflow, subscription_id: Any, product_id: Any, pages: list[Any], user=None
) -> tuple[dict[str, Any], Subscription | None]:
    """Inside the start transaction: the subscription's row lock, its usability check and
    marking it out of sync, so of two concurrent starts exactly one wins. Returns the
    state keys the process starts with and the subscription to link. A refusal names
    only what `user` (None: the system) may view."""
    if workflow.target in SUBSCRIPTION_TARGETS:
        if subscription_id in (None, ""):
            raise FormInvalid(
                f"{workflow.name} runs on a subscription: give its id",
                {"subscription": ["This field is required."]},
            )
        get_subscription(subscription_id)  # 404 before taking any lock
        subscription = (
            Subscription.objects.select_for_update().select_related("product").get(
                pk=subscription_id
            )
        )
        usability = workflow_usability(
            workflow, subscription, SubscriptionFacts(subscription, user)
        )
        if not usability.usable:
            raise Conflict(usability.reason or "Workflow not usable on this subscription")
        check_version(subscription, pages)
        if subscription.insync:
            subscription.insync = False
            subscription.save(update_fields=["insync"])
        state = {
            "subscription_id": str(subscription.pk),
            "subscription": str(subscription.pk),  # loaded into a domain model by type hint
            "version": subscription.version,
        }
        return state, subscription
    if workflow.target == "create":
        if product_id in (None, ""):
            raise FormInvalid(
                f"{workflow.name} creates a subscription: give its product",
                {"product": ["This field is required."]},
            )
        product = Product.objects.filter(pk=product_id).first() if str(
            product_id
        ).isdigit() else Product.objects.filter(name=product_id).first()
        if product is None:
            raise NotFound(f"Unknown product {product_id!r}")
        refusal = create_refusal(workflow, product)
        if refusal:
            raise Conflict(refusal)
        return {"product": product.pk}, None
    return {}, None


def link_product_workflows(*, product: Product, workflows: list[Workflow]) -> None:
    """Add workflows to a product; a second create, terminate or validate workflow is
    refused (Conflict naming the one it has) and nothing is linked."""
    with transaction.atomic():
        product = Product.objects.select_for_update().get(pk=product.pk)
        refusal = workflow_link_refusal(product, [*product.workflows.all(), *workflows])
        if refusal:
            raise Conflict(refusal)
        product.workflows.add(*workflows)


def link_process(process: Process, subscription: Subscription) -> None:
    ProcessSubscription.objects.get_or_create(process=process, subscription=subscription)


def new_subscription(
    *, product_id: int | None, customer_id: Any = "", description: Any = ""
) -> Subscription:
    """The subscription a create workflow makes, not saved yet, checked against the model's
    rules (a ValidationError names the fields)."""
    subscription = Subscription(
        product_id=product_id,
        customer_id=customer_id,
        description=description or "new subscription",
        status="initial",
        insync=False,
    )
    subscription.full_clean(exclude=["product"])
    return subscription


def check_new_subscription(data: Mapping[str, Any]) -> None:
    """At the start of a create workflow: refuse the input its "Create subscription" step
    would refuse later (a missing customer_id...), naming the fields, before anything is
    stored — no run, no orphan subscription."""
    try:
        new_subscription(
            product_id=None,
            customer_id=data.get("customer_id", ""),
            description=data.get("description", ""),
        )
    except ValidationError as error:
        fields = error.message_dict
        problems = "; ".join(f"{name}: {' '.join(items)}" for name, items in sorted(fields.items()))
        raise FormInvalid(
            f"The new subscription cannot be created from this input: {problems}", fields
        ) from None


def create_subscription(
    *, product_id: int, customer_id: str, description: str, process: Process | None = None
) -> Subscription:
    subscription = new_subscription(
        product_id=product_id, customer_id=customer_id, description=description
    )
    subscription.save()
    if process is not None:
        link_process(process, subscription)
    return subscription


def update_subscription(subscription: Subscription, **values: Any) -> Subscription:
    """Change fields and bump the version (every change of data is a new version)."""
    for name, value in values.items():
        setattr(subscription, name, value)
    subscription.version += 1
    subscription.save()
    return subscription


def set_lifecycle(subscription: Subscription, status: str) -> Subscription:
    values: dict[str, Any] = {"status": status}
    if status == "active" and subscription.start_date is None:
        values["start_date"] = timezone.now()
    if status == "terminated":
        values["end_date"] = timezone.now()
    return update_subscription(subscription, **values)


def set_in_sync(*, subscription: Subscription, user=None) -> Subscription:
    """Admin: mark a subscription in sync again — only when no open process holds it."""
    require(user, "subscriptions.set_in_sync", subscription)
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        holders = list(open_processes(subscription)[:3])
        if holders:
            raise Conflict(f"Cannot set in sync while {describe_processes(user, holders)} holds it")
        subscription.insync = True
        subscription.save(update_fields=["insync"])
        record_action("subscription.set_in_sync", user=user, target=subscription,
                      summary="Set the subscription in sync again")
    return subscription


def single_workflow_refusals(
    definitions: list[Any], missing: dict[str, list[Product]]
) -> dict[tuple[str, int], tuple[str, str]]:
    """The links `product_types` asks for that would give a product a second create,
    terminate or validate workflow: {(workflow, product id): (product name, reason)}."""
    targets = {d.name: d.catalogue_row()["target"] for d in definitions if d.name in missing}
    adding: dict[int, tuple[Product, list[str]]] = {}
    for name, found in missing.items():
        for product in found:
            adding.setdefault(product.pk, (product, []))[1].append(name)
    refused = {}
    for product, names in adding.values():
        for name in names:
            target = targets.get(name)
            if target not in SINGLE_WORKFLOW_TARGETS:
                continue
            same = [SimpleNamespace(name=n, target=target) for n in names
                    if targets.get(n) == target]
            reason = workflow_link_refusal(
                product, [*product.workflows.filter(target=target), *same]
            )
            if reason:
                refused[(name, product.pk)] = (product.name, reason)
    return refused


def link_product_type_workflows(
    definitions: list[Any], apply: bool = False
) -> list[tuple[str, str, dict[str, Any]]]:
    """The products a definition's `product_types` should offer it that do not yet, as
    migrate_workflows rows; with `apply`, link them. Links are only ever added: one an
    admin made by hand is not undone here."""
    wanted = {d.name: set(d.product_types) for d in definitions if d.product_types}
    if not wanted:
        return []
    types = set().union(*wanted.values())
    products = list(Product.objects.filter(product_type__name__in=types)
                    .select_related("product_type").order_by("name"))
    through = Product.workflows.through
    linked = set(through.objects.filter(workflow__name__in=wanted)
                 .values_list("workflow__name", "product_id"))
    missing = {
        name: [p for p in products
               if p.product_type.name in product_types and (name, p.pk) not in linked]
        for name, product_types in wanted.items()
    }
    refused = single_workflow_refusals(definitions, missing)
    missing = {name: [p for p in found if (name, p.pk) not in refused]
               for name, found in missing.items()}
    changes = [("products", name, {"link": [p.name for p in found]})
               for name, found in sorted(missing.items()) if found]
    changes += [("refused", name, {"product": product, "reason": reason})
                for (name, _), (product, reason) in sorted(refused.items())]
    if apply and changes:
        ids = dict(Workflow.objects.filter(name__in=missing).values_list("name", "pk"))
        through.objects.bulk_create(
            [through(workflow_id=ids[name], product_id=p.pk)
             for name, found in missing.items() for p in found],
            ignore_conflicts=True,
        )
    return changes
