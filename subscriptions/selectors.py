"""Reads about products and subscriptions; `workflow_usability` is the one place that
answers "may workflow W run on subscription S, and if not, why"."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet
from guardian.shortcuts import get_objects_for_user

from orchestrator.models import TERMINAL_STATUSES, Process, Workflow
from subscriptions.models import Product, Subscription, SubscriptionLifecycle

SUBSCRIPTION_TARGETS = ("modify", "terminate", "validate")


@dataclass(frozen=True)
class Usability:
    usable: bool
    reason: str | None = None


def open_processes(subscription: Subscription) -> QuerySet[Process]:
    """Processes on the subscription that have not ended (they hold it out of sync)."""
    return (
        Process.objects.filter(subscriptions=subscription)
        .exclude(status__in=TERMINAL_STATUSES)
        .select_related("workflow")
    )


def describe_process(process: Process) -> str:
    return f"process {process.pk} ({process.workflow.name}, {process.status})"


def usable_lifecycles(workflow: Workflow) -> list[str]:
    if workflow.name in settings.WF_USABLE_MAP:
        return list(settings.WF_USABLE_MAP[workflow.name])
    if workflow.target == "terminate":
        return [s for s in SubscriptionLifecycle.values if s != SubscriptionLifecycle.TERMINATED]
    return [SubscriptionLifecycle.ACTIVE]


def product_workflow_names(product: Product) -> set[str]:
    return {w.name for w in product.workflows.all()} | set(settings.DEFAULT_PRODUCT_WORKFLOWS)


def workflow_usability(workflow: Workflow, subscription: Subscription) -> Usability:
    """Whether `workflow` may start on `subscription` now, with the reason when not."""
    if workflow.target not in SUBSCRIPTION_TARGETS:
        return Usability(False, f"{workflow.name} is a {workflow.target} workflow, "
                                "not one that runs on an existing subscription")
    if workflow.name not in product_workflow_names(subscription.product):
        return Usability(False, f"{workflow.name} is not a workflow of the product "
                                f"{subscription.product.name}")
    lifecycles = usable_lifecycles(workflow)
    if subscription.status not in lifecycles:
        return Usability(False, f"{workflow.name} does not run on {subscription.status} "
                                f"subscriptions (only on: {', '.join(lifecycles)})")
    may_run_out_of_sync = (
        workflow.is_task
        or workflow.target == "validate"
        or workflow.name in settings.WF_USABLE_WHILE_OUT_OF_SYNC
    )
    if not subscription.insync and not may_run_out_of_sync:
        holders = [describe_process(p) for p in open_processes(subscription)[:3]]
        held_by = f": held by {', '.join(holders)}" if holders else ""
        return Usability(False, f"Subscription {subscription.pk} is out of sync{held_by}")
    related = list(subscription.depends_on.all()) + list(subscription.in_use_by.all())
    unsynced = [s for s in related if not s.insync and s.status != "terminated"]
    if unsynced and not may_run_out_of_sync:
        names = ", ".join(f"{s.description} ({s.pk})" for s in unsynced)
        return Usability(False, f"Related subscription(s) out of sync: {names}")
    if settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS.get(workflow.target, False):
        users = [s for s in subscription.in_use_by.all() if s.status != "terminated"]
        if users:
            names = ", ".join(f"{s.description} ({s.pk})" for s in users)
            return Usability(False, f"Subscription is in use by: {names}")
    return Usability(True)


def subscription_workflows(subscription: Subscription) -> list[tuple[Workflow, Usability]]:
    """Every workflow that could apply to the subscription, with its usability."""
    names = product_workflow_names(subscription.product)
    workflows = Workflow.objects.filter(name__in=names, target__in=SUBSCRIPTION_TARGETS)
    return [(workflow, workflow_usability(workflow, subscription)) for workflow in workflows]


def subscriptions_for_user(user) -> QuerySet[Subscription]:
    """Subscriptions the user may see (model permission, or guardian per-object grants)."""
    return get_objects_for_user(
        user,
        "subscriptions.view_subscription",
        klass=Subscription.objects.select_related("product"),
        accept_global_perms=True,
    )


def products_for_user(user) -> QuerySet[Product]:
    return get_objects_for_user(
        user,
        "subscriptions.view_product",
        klass=Product.objects.select_related("product_type"),
        accept_global_perms=True,
    )
