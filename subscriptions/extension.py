"""How subscriptions plug into the engine (orchestrator.extensions): a start names the
subscription a modify/terminate/validate workflow runs on or the product a create workflow
makes a subscription of; the start holds the subscription (row lock, usability, out of
sync) in its own transaction; a process shows the subscriptions it touched."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.urls import reverse

from orchestrator.extensions import (
    ProcessExtension,
    Reservation,
    StartChoice,
    StartPage,
    StartTarget,
    Touched,
)
from orchestrator.models import Process, Workflow
from orchestrator.targets import Target
from subscriptions import selectors, services


def product_choice(user, workflow: Workflow) -> StartChoice:
    """The products the user may see that `workflow` creates subscriptions of."""
    products = selectors.product_choices(user, workflow)
    return StartChoice(
        name="product", label="Product",
        options=tuple((str(p.pk), f"{p.name} ({p.product_type.name})") for p in products),
        help="The product the new subscription is of." if products else
        f"No product you may see offers {workflow.name}: an admin links it to one.",
    )


def subscription_choice(user, workflow: Workflow) -> StartChoice:
    """The subscriptions the user may see that `workflow` could run on (at most
    MAX_START_CHOICES; whether it may run now is said once one is chosen)."""
    found = selectors.subscription_choices(user, workflow)
    shown = found[: selectors.MAX_START_CHOICES]
    if not shown:
        help_text = f"No subscription you may see is one {workflow.name} runs on."
    elif len(found) > len(shown):
        help_text = (f"The first {len(shown)} by description; for another, open it on the "
                     "subscriptions page and start the workflow there.")
    else:
        help_text = "The subscription the workflow changes."
    return StartChoice(
        name="subscription", label="Subscription",
        options=tuple(
            (str(s.pk), f"{s.description} ({s.product.name}, {s.status}"
                        f"{'' if s.insync else ', out of sync'})")
            for s in shown
        ),
        help=help_text,
    )


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

    def check_input(
        self, *, workflow: Workflow, targets: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        if workflow.target == Target.CREATE:
            services.check_new_subscription(data)

    def reserve(
        self, *, workflow: Workflow, targets: Mapping[str, Any], pages: list[Any], user=None
    ) -> Reservation:
        state, held = services.reserve_for_process(
            workflow=workflow,
            subscription_id=targets.get("subscription"),
            product_id=targets.get("product"),
            pages=pages,
            user=user,
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
        page = StartPage(problem=selectors.start_problem(workflow, subscription, product, user))
        if workflow.target == "create" and product is None:
            page.choices.append(product_choice(user, workflow))
        elif workflow.target in selectors.SUBSCRIPTION_TARGETS and subscription is None:
            page.choices.append(subscription_choice(user, workflow))
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

    def catalogue_changes(
        self, definitions: list, apply: bool
    ) -> list[tuple[str, str, dict[str, Any]]]:
        return services.link_product_type_workflows(definitions, apply)
