"""How subscriptions plug into the engine (orchestrator.extensions): a start names the
subscription a modify/terminate/validate workflow runs on or the product a create workflow
makes a subscription of; the start holds the subscription (row lock, usability, out of
sync) in its own transaction; a process shows the subscriptions it touched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import reverse

from orchestrator.extensions import ProcessExtension, Reservation, StartPage, StartTarget, Touched
from orchestrator.models import Process, Workflow
from subscriptions import selectors, services


class SubscriptionExtension(ProcessExtension):
    start_targets = ("subscription", "product")

    def resolve_targets(self, user, targets: dict[str, Any]) -> dict[str, Any]:
        if user is None:  # the system names what it means
            return targets
        subscription, product = selectors.start_targets(
            user, targets.get("subscription"), targets.get("product")
        )
        return {"subscription": subscription, "product": product}

    def form_state(self, targets: Mapping[str, Any]) -> dict[str, Any]:
        subscription = targets.get("subscription")
        return {"subscription_id": str(subscription)} if subscription else {}

    def reserve(
        self, *, workflow: Workflow, targets: Mapping[str, Any], pages: list[Any]
    ) -> Reservation:
        state, held = services.reserve_for_process(
            workflow=workflow,
            subscription_id=targets.get("subscription"),
            product_id=targets.get("product"),
            pages=pages,
        )
        link = None
        if held is not None:
            def link(process: Process) -> None:
                services.link_process(process, held)
        return Reservation(state=state, link=link)

    def start_page(self, user, workflow: Workflow, targets: Mapping[str, str]) -> StartPage:
        subscription = product = None
        if targets.get("subscription"):
            subscription = selectors.visible_subscription(user, targets["subscription"])
        if targets.get("product"):
            product = selectors.visible_product(user, targets["product"])
        page = StartPage(problem=selectors.start_problem(workflow, subscription, product))
        if subscription is not None:
            url = reverse("subscription-detail", args=[subscription.pk])
            page.targets.append(StartTarget(
                name="subscription", value=str(subscription.pk), text="On subscription",
                label=subscription.description, url=url,
                detail=(f"{subscription.pk} ({subscription.product.name}, {subscription.status}, "
                        f"version {subscription.version})"),
                back_label="Back to the subscription", back_url=url,
            ))
            page.initial["version"] = subscription.version  # the stale-data check's baseline
        if product is not None:
            url = reverse("product-list")
            page.targets.append(StartTarget(
                name="product", value=str(product.pk),
                text="Creates a subscription of the product", label=product.name,
                url=f"{url}#product-{product.pk}", back_label="Back to products", back_url=url,
            ))
        return page

    def touched(self, user, process: Process) -> list[Touched]:
        return [
            Touched(
                kind="subscription",
                heading="Subscriptions",
                id=str(subscription.pk),
                label=subscription.description,
                url=reverse("subscription-detail", args=[subscription.pk]),
                status=subscription.status,
                note="" if subscription.insync else "out of sync",
            )
            for subscription in selectors.process_subscriptions(user, process)
        ]
