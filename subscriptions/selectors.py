"""Reads about products and subscriptions; `workflow_usability` is the one place that
answers "may workflow W run on subscription S, and if not, why"."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Permission
from django.db.models import Exists, OuterRef, Prefetch, Q, QuerySet
from guardian.shortcuts import get_objects_for_user

from orchestrator.exceptions import NotFound
from orchestrator.models import TERMINAL_STATUSES, Process, Workflow
from orchestrator.selectors import processes_for_user, workflows_for_user
from subscriptions.models import (
    Product,
    Subscription,
    SubscriptionGroupObjectPermission,
    SubscriptionLifecycle,
    SubscriptionUserObjectPermission,
)

SUBSCRIPTION_TARGETS = ("modify", "terminate", "validate")
# A product has at most one workflow of each of these targets (as in orchestrator-core).
SINGLE_WORKFLOW_TARGETS = ("create", "terminate", "validate")
MAX_PRODUCT_NAME = Product._meta.get_field("name").max_length


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


def describe_subscription(subscription: Subscription) -> str:
    return f"{subscription.description} ({subscription.pk})"


HIDDEN_PROCESSES = "process(es) you may not view"
HIDDEN_SUBSCRIPTIONS = "subscription(s) you may not view"


def name_visible(items: list, visible_ids: set, describe, hidden: str) -> str:
    """The items a message names: visible ones by name, the others only as `hidden` (no
    id, name or number), so no reason or error names what the user may not see."""
    names = [describe(item) for item in items if item.pk in visible_ids]
    if len(names) < len(items):
        names.append(hidden)
    return ", ".join(names)


def visible_process_ids(user, processes: list[Process]) -> set:
    if user is None:
        return {process.pk for process in processes}
    ids = [process.pk for process in processes]
    return set(processes_for_user(user).filter(pk__in=ids).values_list("pk", flat=True))


def describe_processes(user, processes: list[Process]) -> str:
    """`processes` as `user` may hear of them (None: the system hears of all)."""
    return name_visible(
        processes, visible_process_ids(user, processes), describe_process, HIDDEN_PROCESSES
    )


def usable_lifecycles(workflow: Workflow) -> list[str]:
    if workflow.name in settings.WF_USABLE_MAP:
        return list(settings.WF_USABLE_MAP[workflow.name])
    if workflow.target == "terminate":
        return [s for s in SubscriptionLifecycle.values if s != SubscriptionLifecycle.TERMINATED]
    return [SubscriptionLifecycle.ACTIVE]


def blocked_by_in_use(workflow: Workflow) -> bool:
    """Whether live subscriptions using the subscription block `workflow`.

    `WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS` is keyed by workflow name, as in orchestrator-core;
    the earlier form keyed by target ("terminate", "modify") still counts for workflows the
    setting does not name (a system check warns that it is deprecated). Unnamed: terminate
    workflows are blocked, the others are not.
    """
    setting = settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS
    if workflow.name in setting:
        return bool(setting[workflow.name])
    if workflow.target in setting:
        return bool(setting[workflow.target])
    return workflow.target == "terminate"


def product_workflow_names(product: Product) -> set[str]:
    return {w.name for w in product.workflows.all()} | set(settings.DEFAULT_PRODUCT_WORKFLOWS)


def default_product_workflows(user=None) -> QuerySet[Workflow]:
    """The workflows attached to every product (`DEFAULT_PRODUCT_WORKFLOWS`), those `user`
    may view (None: all)."""
    workflows = Workflow.objects.all() if user is None else workflows_for_user(user)
    return workflows.filter(name__in=settings.DEFAULT_PRODUCT_WORKFLOWS)


def visible_product_workflows(user) -> Prefetch:
    """Prefetch a product's workflows as `user` may see them: the name of a workflow they
    may not view is never listed with a product."""
    return Prefetch("workflows", queryset=workflows_for_user(user))


class SubscriptionFacts:
    """What the usability rules read about one subscription, each fetched at most once, so
    judging all of its workflows costs the same queries as judging one."""

    def __init__(self, subscription: Subscription, user=None) -> None:
        self.subscription = subscription
        self.user = user  # whom the reasons are for; None: the system, which sees all

    @cached_property
    def product_workflow_names(self) -> set[str]:
        return product_workflow_names(self.subscription.product)

    @cached_property
    def holders(self) -> str:
        return describe_processes(self.user, list(open_processes(self.subscription)[:3]))

    @cached_property
    def visible_related_ids(self) -> set:
        ids = [s.pk for s in self.related]
        if self.user is None:
            return set(ids)
        return set(subscriptions_for_user(self.user).filter(pk__in=ids).values_list(
            "pk", flat=True
        ))

    def describe_related(self, subscriptions: list[Subscription]) -> str:
        return name_visible(
            subscriptions, self.visible_related_ids, describe_subscription, HIDDEN_SUBSCRIPTIONS
        )

    @cached_property
    def in_use_by(self) -> list[Subscription]:
        return list(self.subscription.in_use_by.all())

    @cached_property
    def related(self) -> list[Subscription]:
        return list(self.subscription.depends_on.all()) + self.in_use_by


def workflow_usability(
    workflow: Workflow, subscription: Subscription, facts: SubscriptionFacts | None = None
) -> Usability:
    """Whether `workflow` may start on `subscription` now, with the reason when not (a reason
    for `facts.user`: it names only the related subscriptions and processes they may view)."""
    facts = facts or SubscriptionFacts(subscription)
    if workflow.target not in SUBSCRIPTION_TARGETS:
        return Usability(False, f"{workflow.name} is a {workflow.target} workflow, "
                                "not one that runs on an existing subscription")
    if workflow.name not in facts.product_workflow_names:
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
        held_by = f": held by {facts.holders}" if facts.holders else ""
        return Usability(False, f"Subscription {subscription.pk} is out of sync{held_by}")
    unsynced = [s for s in facts.related if not s.insync and s.status != "terminated"]
    if unsynced and not may_run_out_of_sync:
        names = facts.describe_related(unsynced)
        return Usability(False, f"Related subscription(s) out of sync: {names}")
    if blocked_by_in_use(workflow):
        users = [s for s in facts.in_use_by if s.status != "terminated"]
        if users:
            return Usability(False, f"Subscription is in use by: {facts.describe_related(users)}")
    return Usability(True)


def create_refusal(workflow: Workflow, product: Product) -> str | None:
    """Why `workflow` may not create a subscription of `product` (None when it may)."""
    if not product.workflows.filter(pk=workflow.pk).exists():
        return f"{workflow.name} is not a workflow of the product {product.name}"
    return None


def start_problem(
    workflow: Workflow, subscription: Subscription | None, product: Product | None, user=None
) -> str:
    """Why starting `workflow` on what it was given would be refused, to say so before the
    form is filled ("" when it would not, or when it still has to be chosen); a reason for
    `user`, naming nothing they may not view."""
    if workflow.target in SUBSCRIPTION_TARGETS and subscription is not None:
        return workflow_usability(
            workflow, subscription, SubscriptionFacts(subscription, user)
        ).reason or ""
    if workflow.target == "create" and product is not None:
        return create_refusal(workflow, product) or ""
    return ""


MAX_START_CHOICES = 200


def product_choices(user, workflow: Workflow) -> list[Product]:
    """The products a create workflow may make a subscription of that `user` may see."""
    return list(products_for_user(user).filter(workflows=workflow).order_by("name"))


def subscription_choices(user, workflow: Workflow) -> list[Subscription]:
    """Subscriptions `user` may see that `workflow` could run on (its products', in the
    lifecycles it runs on), at most MAX_START_CHOICES + 1 (to tell that there are more)."""
    subscriptions = subscriptions_for_user(user).filter(status__in=usable_lifecycles(workflow))
    if workflow.name not in settings.DEFAULT_PRODUCT_WORKFLOWS:
        subscriptions = subscriptions.filter(product__workflows=workflow)
    return list(subscriptions.order_by("description", "pk")[: MAX_START_CHOICES + 1])


def workflow_link_refusal(product: Product, workflows: list[Workflow]) -> str | None:
    """Why `product` may not have `workflows` as its workflows (None when it may): at most one
    create, one terminate and one validate workflow; the refusal names the one it has."""
    for target in SINGLE_WORKFLOW_TARGETS:
        names = sorted({w.name for w in workflows if w.target == target})
        if len(names) < 2:
            continue
        kept = sorted(
            product.workflows.filter(target=target, name__in=names).values_list("name", flat=True)
        ) if product.pk else []
        if kept:
            others = ", ".join(name for name in names if name not in kept)
            return (f"Product {product.name} already has the {target} workflow {kept[0]}: "
                    f"it cannot also have {others} (a product has at most one create, one "
                    "terminate and one validate workflow)")
        return (f"Product {product.name} cannot have two {target} workflows "
                f"({', '.join(names)}): a product has at most one create, one terminate and "
                "one validate workflow")
    return None


def subscription_workflows(
    subscription: Subscription, user=None
) -> list[tuple[Workflow, Usability]]:
    """Every workflow that could apply to the subscription and that `user` may view (None:
    all), with its usability as `user` may hear of it."""
    facts = SubscriptionFacts(subscription, user)
    workflows = Workflow.objects.all() if user is None else workflows_for_user(user)
    workflows = workflows.filter(
        name__in=facts.product_workflow_names, target__in=SUBSCRIPTION_TARGETS
    )
    return [(workflow, workflow_usability(workflow, subscription, facts)) for workflow in workflows]


VIEW_SUBSCRIPTION = "subscriptions.view_subscription"


def subscriptions_for_user(user) -> QuerySet[Subscription]:
    """Subscriptions the user may see (model permission, or guardian per-object grants of the
    user or of their groups), exactly as guardian's `get_objects_for_user` answers it."""
    if user.is_anonymous:
        return guardian_visible_subscriptions(user)
    if user.is_superuser or user.has_perm(VIEW_SUBSCRIPTION):
        return Subscription.objects.select_related("product")
    app_label, codename = VIEW_SUBSCRIPTION.split(".")
    view = (
        Permission.objects.filter(codename=codename, content_type__app_label=app_label)
        .annotate(by_groups=Exists(SubscriptionGroupObjectPermission.objects.filter(
            permission=OuterRef("pk"), group__user=user
        )))
        .values_list("pk", "by_groups")
        .first()
    )
    if view is None or view[1]:
        return guardian_visible_subscriptions(user)
    # Only the user's own grants, by permission id: guardian ORs them with the groups' grants
    # and names the permission by codename, so PostgreSQL hashes every grant of the user
    # before the first row (20 ms at 50k grants; misjudging the codename join, it once
    # fetched all 50k rows to sort them). As a semi-join on the permission id it walks the
    # newest-first index, probing the grants' index, and stops at the page's end (1 ms).
    own = SubscriptionUserObjectPermission.objects.filter(user=user, permission_id=view[0])
    return Subscription.objects.filter(
        pk__in=own.values("content_object_id")
    ).select_related("product")


def guardian_visible_subscriptions(user) -> QuerySet[Subscription]:
    # The model, not a queryset, as klass: with a queryset guardian joins the whole table
    # again on text-cast ids (a plan that degrades badly at 100k rows).
    return get_objects_for_user(
        user, VIEW_SUBSCRIPTION, klass=Subscription, accept_global_perms=True
    ).select_related("product")


# What a list row shows; the JSON values and the note can be large, and only the detail shows
# them.
LIST_DEFERRED = ("instance_values", "note")


def subscription_list_rows(user) -> QuerySet[Subscription]:
    """The subscriptions list (page and API) as `user` may see it: newest first, without the
    fields only the detail shows."""
    return subscriptions_for_user(user).defer(*LIST_DEFERRED).order_by("-created_at", "-pk")


def process_subscriptions(user, process: Process) -> list[Subscription]:
    """The subscriptions a process touched, as far as `user` may see them. The links are read
    first: most processes touch none or one, and working out what a user may see costs more
    (some milliseconds of query building) than reading them."""
    touched = list(Subscription.objects.filter(processes=process))
    if not touched:
        return []
    visible = set(
        subscriptions_for_user(user).filter(pk__in=[subscription.pk for subscription in touched])
        .values_list("pk", flat=True)
    )
    return [subscription for subscription in touched if subscription.pk in visible]


def products_for_user(user) -> QuerySet[Product]:
    return get_objects_for_user(
        user,
        "subscriptions.view_product",
        klass=Product.objects.select_related("product_type"),
        accept_global_perms=True,
    )


def visible_subscription(user, subscription_id: Any) -> Subscription:
    """The subscription if `user` may view it; NotFound for unknown, invisible or malformed
    ids alike, so a forbidden subscription is indistinguishable from a missing one."""
    try:
        pk = uuid.UUID(str(subscription_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(f"Unknown subscription {str(subscription_id)[:100]!r}") from None
    subscription = (
        subscriptions_for_user(user).select_related("product__product_type").filter(pk=pk).first()
    )
    if subscription is None:
        raise NotFound(f"Unknown subscription {str(subscription_id)[:100]!r}")
    return subscription


def product_lookup(product_id: Any) -> Q:
    """A product named by id or by name."""
    value = str(product_id)
    if value.isascii() and value.isdigit() and len(value) <= 18:
        return Q(pk=int(value)) | Q(name=value)
    return Q(name=value)


def find_product(product_id: Any) -> Product | None:
    """A product named by id or by name (None when there is none)."""
    value = str(product_id)
    if "\x00" in value or len(value) > MAX_PRODUCT_NAME:  # PostgreSQL refuses NUL
        return None
    return Product.objects.select_related("product_type").filter(product_lookup(value)).first()


def product_change_refusal(
    subscription: Subscription, product: Product | None, given: Any = None
) -> str | None:
    """Why `subscription` may not move to `product` (None when it may): a subscription
    changes product only within its product type, as orchestrator-core's
    `from_other_product` allows (Port 10G → Port 100G, never Port → Node)."""
    if product is None:
        return f"Unknown product {str(given)[:100]!r}"
    current = subscription.product
    if product.product_type_id == current.product_type_id:
        return None
    return (
        f"Subscription {subscription.description} ({subscription.pk}) cannot move from product "
        f"{current.name} (type {current.product_type.name}) to {product.name} (type "
        f"{product.product_type.name}): a subscription changes product only within its "
        "product type"
    )


def visible_product(user, product_id: Any) -> Product:
    """The product (by id or name) if `user` may view it; NotFound otherwise."""
    value = str(product_id)
    product = None
    if "\x00" not in value and len(value) <= MAX_PRODUCT_NAME:  # PostgreSQL refuses NUL
        product = products_for_user(user).filter(product_lookup(value)).first()
    if product is None:
        raise NotFound(f"Unknown product {str(product_id)[:100]!r}")
    return product


def start_targets(user, subscription: Any, product: Any) -> tuple[str | None, int | None]:
    """The subscription and product a start names, as ids, if `user` may view them; an
    unknown, invisible or malformed one is NotFound (never a hint that it exists)."""
    subscription_id = product_id = None
    if subscription not in (None, ""):
        subscription_id = str(visible_subscription(user, subscription).pk)
    if product not in (None, ""):
        product_id = visible_product(user, product).pk
    return subscription_id, product_id


def holding_processes(subscription: Subscription, limit: int = 5) -> list[Process]:
    """The open processes that hold the subscription out of sync, oldest first."""
    return list(open_processes(subscription).order_by("started_at", "pk")[:limit])


def out_of_sync_reason(
    subscription: Subscription, holders: list[Process] | None = None, user=None
) -> str | None:
    """Why the subscription is out of sync (None when it is in sync), naming only the
    holding processes `user` may view."""
    if subscription.insync:
        return None
    holders = holding_processes(subscription) if holders is None else holders
    if holders:
        return "Out of sync: held by " + describe_processes(user, holders)
    return "Out of sync, and no open process holds it: an admin may set it in sync again"


def subscription_processes(user, subscription: Subscription) -> QuerySet[Process]:
    """The processes that touched the subscription, newest first, as far as `user` may see."""
    return (
        processes_for_user(user)
        .filter(subscriptions=subscription)
        .select_related("workflow", "created_by")
        .order_by("-started_at", "-pk")
    )
