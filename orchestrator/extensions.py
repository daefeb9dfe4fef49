"""The engine's one extension point (DESIGN §3): what domain apps add to a process's life.

The engine knows no domain. An app with something to say about processes subclasses
`ProcessExtension`, overrides what it needs, and registers one instance from its
`AppConfig.ready()`:

    class InventoryConfig(AppConfig):
        def ready(self):
            from orchestrator.extensions import register
            from inventory.extension import InventoryExtension
            register(InventoryExtension())

The engine calls every registered extension, in registration order, at these points:

- a start (`services.start_process`): each extension owns some *start targets* — keyword
  arguments of `start_process` naming what the run is for (the subscriptions app owns
  `subscription` and `product`). Before anything is stored it may refuse a target the
  user may not see (`resolve_targets`) and refuse input the run cannot succeed with
  (`check_input`); inside the transaction that stores the process
  it may veto the start (raise an `OrchestratorError`) or prepare it (`reserve`): state
  keys the run starts with, secrets it receives in memory only, and a link written once
  the process row exists. A start page asks it what to show about the targets, and
  which to ask for first when none was given (`start_page`).
- what a process touched (`touched`): objects shown on the process page and in the API.
- the catalogue (`catalogue_changes`): what `migrate_workflows` must add to the app's
  records for the definitions in code (the subscriptions app links products to the
  workflows naming their product type in `product_types`).
- when a process stops running by itself (`process_stopped`): completed, failed,
  aborted..., called inside the very transaction that records the new status, so what an
  extension does there commits exactly when the status does (a worker killed before the
  commit leaves neither).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction

if TYPE_CHECKING:
    from orchestrator.catalogue import WorkflowDefinition
    from orchestrator.models import Process, Workflow

logger = logging.getLogger(__name__)

# Statuses in which a process no longer moves on by itself and no one is asked for input:
# `process_stopped` is called when a process enters one of them.
STOPPED_STATUSES = (
    "completed",
    "failed",
    "api_unavailable",
    "inconsistent_data",
    "aborted",
    "cancelled",
)


@dataclass(frozen=True)
class Touched:
    """Something a process touched, as its page and the API show it."""

    kind: str  # a stable machine name, e.g. "subscription"
    heading: str  # how the page titles the group, e.g. "Subscriptions"
    id: str
    label: str
    url: str = ""
    status: str = ""
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "id": self.id,
            "label": self.label,
            "url": self.url,
            "status": self.status,
            "note": self.note,
        }


@dataclass
class Reservation:
    """What an extension prepares for a start, inside the transaction that stores it."""

    state: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Any] = field(default_factory=dict)  # in memory only, encrypted at rest
    link: Callable[[Process], None] | None = None  # called once the process row exists


@dataclass(frozen=True)
class StartTarget:
    """What a start page shows about one target, and the hidden field that carries it."""

    name: str  # the start target's name (a keyword of start_process)
    value: str  # its id, posted back in a hidden field
    text: str  # e.g. "On subscription"
    label: str
    url: str = ""
    detail: str = ""
    back_label: str = ""  # where "Back" leads from the start page
    back_url: str = ""


@dataclass(frozen=True)
class StartChoice:
    """A target the start page asks for first when it was not given one (the product of a
    create workflow, the subscription of a modify workflow): the page offers these options
    and, once one is chosen, shows the workflow's form for it."""

    name: str  # the start target's name (the query parameter the choice sets)
    label: str
    options: tuple[tuple[str, str], ...]  # (value, text), only what the user may see
    help: str = ""


@dataclass
class StartPage:
    targets: list[StartTarget] = field(default_factory=list)
    choices: list[StartChoice] = field(default_factory=list)  # asked for before the form
    problem: str = ""  # why a start would be refused, said before the form is filled
    initial: dict[str, Any] = field(default_factory=dict)  # initial values of form fields


class ProcessExtension:
    """Base class: every method has a neutral default, so an app overrides only its part."""

    # Keyword arguments of `start_process` (and start-page parameters) this extension owns.
    start_targets: tuple[str, ...] = ()

    def resolve_targets(self, user, targets: dict[str, Any]) -> dict[str, Any]:
        """Before anything is stored: the targets as ids, if `user` may see them (else
        raise NotFound, never hinting that a forbidden one exists). `user` is None for the
        system. Returns only this extension's targets."""
        return targets

    def form_state(self, targets: Mapping[str, Any]) -> dict[str, Any]:
        """State the start's input forms are built from (e.g. the subscription id)."""
        return {}

    def check_input(
        self, *, workflow: Workflow, targets: Mapping[str, Any], data: Mapping[str, Any]
    ) -> None:
        """Before anything is stored, with the validated input (`data`): refuse input the
        run could not succeed with (raise FormInvalid naming the fields), so a start that
        is bound to fail later is a 400 now and leaves nothing behind."""

    def reserve(
        self, *, workflow: Workflow, targets: Mapping[str, Any], pages: list[Any], user=None
    ) -> Reservation | None:
        """Inside the start transaction: veto (raise OrchestratorError) or prepare. A veto's
        message is for `user` (None: the system): it names nothing they may not view."""
        return None

    def start_page(self, user, workflow: Workflow, targets: Mapping[str, str]) -> StartPage:
        """What the start page of `workflow` shows about the (raw) targets it was given;
        raise NotFound for unknown or invisible ones."""
        return StartPage()

    def touched(self, user, process: Process) -> list[Touched]:
        """What `process` touched, as far as `user` may see."""
        return []

    def process_stopped(self, process: Process, status: str) -> None:
        """`process` entered `status` (one of STOPPED_STATUSES), inside that transaction."""

    def catalogue_changes(
        self, definitions: list[WorkflowDefinition], apply: bool
    ) -> list[tuple[str, str, dict[str, Any]]]:
        """What this app's records lack for the code's catalogue (e.g. the products that
        should offer a workflow of their `product_types`), as (action, workflow name,
        values) rows that `migrate_workflows` shows; with `apply`, make it so (called
        after the catalogue rows are written, in the same transaction)."""
        return []


_extensions: list[ProcessExtension] = []


def register(extension: ProcessExtension) -> ProcessExtension:
    """Add an extension (once per class: a second registration replaces the first)."""
    owned = {name for other in _extensions for name in other.start_targets
             if type(other) is not type(extension)}
    clash = owned & set(extension.start_targets)
    if clash:
        raise ValueError(f"start target(s) {sorted(clash)} are owned by another extension")
    _extensions[:] = [e for e in _extensions if type(e) is not type(extension)]
    _extensions.append(extension)
    return extension


def extensions() -> list[ProcessExtension]:
    return list(_extensions)


def start_target_names() -> list[str]:
    return [name for extension in _extensions for name in extension.start_targets]


def split_targets(targets: Mapping[str, Any]) -> list[tuple[ProcessExtension, dict[str, Any]]]:
    """Each extension with its own targets; a target no extension owns is a TypeError."""
    unknown = set(targets) - set(start_target_names())
    if unknown:
        raise TypeError(f"unknown start target(s): {', '.join(sorted(unknown))}")
    return [
        (extension, {name: targets.get(name) for name in extension.start_targets})
        for extension in _extensions
    ]


def touched(user, process: Process) -> list[Touched]:
    return [item for extension in _extensions for item in extension.touched(user, process)]


def catalogue_changes(
    definitions: list[WorkflowDefinition], apply: bool = False
) -> list[tuple[str, str, dict[str, Any]]]:
    return [change for extension in _extensions
            for change in extension.catalogue_changes(definitions, apply)]


def process_stopped(process: Process, status: str) -> None:
    """Tell every extension that `process` stopped; must be called inside the transaction
    that writes the status (an extension's failure rolls the whole transaction back)."""
    if status not in STOPPED_STATUSES:
        return
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("process_stopped must run inside the status change's transaction")
    for extension in _extensions:
        extension.process_stopped(process, status)
