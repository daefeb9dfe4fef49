"""Subscription workflow decorators (DESIGN §5) and run tagging.

    @create_workflow("Create node", initial_input_form=NodeForm)
    def create_node() -> StepList:
        return begin >> construct_node >> provision_node

adds the default steps: create the subscription and link it → your steps → set it
active → in sync → done. modify/terminate/validate do the same for their targets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.utils import timezone

from orchestrator.aio import awaitable_in_async
from orchestrator.context import require_current_run
from orchestrator.targets import Target
from orchestrator.workflow import State, StepList, WorkflowSpec, done, init, step, workflow


def _subscription(subscription_id: str):
    from subscriptions.models import Subscription

    return Subscription.objects.select_for_update().get(pk=subscription_id)


@step("Create subscription")
def create_subscription_step(
    product: int, process_id: str, customer_id: str = "", description: str = ""
) -> State:
    from orchestrator.models import Process
    from subscriptions.services import create_subscription

    subscription = create_subscription(
        product_id=product,
        customer_id=customer_id,
        description=description,
        process=Process.objects.get(pk=process_id),
    )
    return {
        "subscription_id": str(subscription.pk),
        "subscription": str(subscription.pk),
        "version": subscription.version,
    }


@step("Set subscription active")
def set_active_step(subscription_id: str) -> State:
    from subscriptions.services import set_lifecycle

    set_lifecycle(_subscription(subscription_id), "active")
    return {}


@step("Set subscription terminated")
def set_terminated_step(subscription_id: str) -> State:
    from subscriptions.services import set_lifecycle

    set_lifecycle(_subscription(subscription_id), "terminated")
    return {}


@step("Mark subscription out of sync")
def unsync_step(subscription_id: str) -> State:
    subscription = _subscription(subscription_id)
    if subscription.insync:
        subscription.insync = False
        subscription.save(update_fields=["insync"])
    return {}


@step("Set subscription in sync")
def resync_step(subscription_id: str) -> State:
    subscription = _subscription(subscription_id)
    subscription.insync = True
    subscription.save(update_fields=["insync"])
    return {"insync_at": timezone.now().isoformat()}


@step("Set subscription in sync if no other process holds it")
def resync_if_free_step(subscription_id: str, process_id: str) -> State:
    """Validation may run beside a modify that holds the subscription: leave that one be."""
    from subscriptions.selectors import open_processes

    subscription = _subscription(subscription_id)
    if open_processes(subscription).exclude(pk=process_id).exists():
        return {"validation_resynced": False}
    subscription.insync = True
    subscription.save(update_fields=["insync"])
    return {"validation_resynced": True}


def _decorator(
    target: Target,
    before: StepList,
    after: StepList,
) -> Callable[..., Callable[[Callable[[], StepList]], WorkflowSpec]]:
    def factory(
        description: str,
        initial_input_form: Any = None,
        run_predicate: Callable[..., str | None] | None = None,
    ) -> Callable[[Callable[[], StepList]], WorkflowSpec]:
        def decorate(func: Callable[[], StepList]) -> WorkflowSpec:
            def build() -> StepList:
                return before >> func() >> after

            build.__name__ = func.__name__
            return workflow(description, initial_input_form, target, run_predicate)(build)

        return decorate

    return factory


create_workflow = _decorator(
    Target.CREATE,
    init >> create_subscription_step,
    set_active_step >> resync_step >> done,
)
modify_workflow = _decorator(
    Target.MODIFY, init >> unsync_step, StepList() >> resync_step >> done
)
terminate_workflow = _decorator(
    Target.TERMINATE, init >> unsync_step, set_terminated_step >> resync_step >> done
)
validate_workflow = _decorator(
    Target.VALIDATE, StepList() >> init, resync_if_free_step >> done
)


def _tag_names(branches: Any, nodes: Any, others: Any) -> list[str]:
    names: list[str] = []
    for prefix, values in (("branch:", branches), ("node:", nodes), ("", others)):
        if values is None:
            continue
        if isinstance(values, str):
            raise TypeError(f"add_tags takes lists of names, not the string {values!r}")
        for value in values:
            text = str(value).strip()
            if not text:
                raise ValueError("a tag name must not be empty")
            names.append((prefix + text)[:255])
    return list(dict.fromkeys(names))


@awaitable_in_async
def _write_tags(process_id: str | None, names: list[str]) -> None:
    from orchestrator.models import ProcessTag

    process_id = process_id or require_current_run("add_tags").process_id
    ProcessTag.objects.bulk_create(
        [ProcessTag(process_id=process_id, name=name) for name in names], ignore_conflicts=True
    )


def add_tags(
    branches: Iterable[str] | str | None = None,
    nodes: Iterable[str] | None = None,
    others: Iterable[str] | None = None,
    *,
    process_id: str | None = None,
) -> Any:
    """Tag the current run, as Infrahub does: `branch:<name>` per branch, `node:<id>` per
    node, `others` as given. From a step or task no id is needed; the tags are written in
    the step's transaction (a failed step leaves none). From async code, `await` it.

    The older form `add_tags(process_id, ["tag", ...])` still works.
    """
    if isinstance(branches, str) and nodes is not None and not isinstance(nodes, str):
        return _write_tags(branches, _tag_names(None, None, nodes))
    return _write_tags(process_id, _tag_names(branches, nodes, others))


def add_branch_tag(branch_name: str, *legacy: str, process_id: str | None = None) -> Any:
    """Tag the current run `branch:<branch_name>` (`await` it from async code).

    The older form `add_branch_tag(process_id, branch_name)` still works.
    """
    if legacy:
        process_id, branch_name = branch_name, legacy[0]
    return add_tags(branches=[branch_name], process_id=process_id)


__all__ = [
    "add_branch_tag",
    "add_tags",
    "create_workflow",
    "modify_workflow",
    "terminate_workflow",
    "validate_workflow",
]
