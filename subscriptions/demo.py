"""Demo data of the subscriptions app (DESIGN §10): the network team's products and a few
example subscriptions, made by running the real create workflows so they have history.

`load(stdout)` is called by `manage.py load_demo_data` (inside a transaction) and is
idempotent: the catalogue is brought up to date on every call, the examples are only
created while no subscription exists at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.management.base import CommandError

from orchestrator import registry, services
from orchestrator.models import Process, ProcessStatus, Workflow
from orchestrator.runner import run_process
from subscriptions.demo_workflows import PRODUCT_TYPE_WORKFLOWS
from subscriptions.models import (
    FixedInput,
    Product,
    ProductBlock,
    ProductType,
    Subscription,
)
from subscriptions.services import link_product_workflows

PRODUCT_TYPES = {
    "Node": "Routers and switches in the network",
    "Port": "Physical interfaces on a node, sold to customers",
    "L2VPN": "Point-to-point layer 2 services between two ports",
    "UserGroup": "Groups of users (orchestrator-core's example)",
    "User": "Users in a group (orchestrator-core's example)",
}
PRODUCT_BLOCKS = {
    "NodeBlock": ("NODE", "hostname, role, site, loopback address, configuration"),
    "PortBlock": ("PORT", "node, interface name, speed, configuration"),
    "L2vpnBlock": ("L2VPN", "VLAN, two port endpoints, virtual circuit id"),
    "UserGroupBlock": ("GROUP", "group name"),
    "UserBlock": ("USER", "username, age, group"),
}


@dataclass(frozen=True)
class ProductSpec:
    name: str
    product_type: str
    tag: str
    description: str
    blocks: tuple[str, ...]
    fixed_inputs: dict[str, str] = field(default_factory=dict)


PRODUCTS = (
    ProductSpec("Node", "Node", "NODE", "A router or switch", ("NodeBlock",)),
    ProductSpec("Port 10G", "Port", "PORT", "A 10 Gbit/s port", ("PortBlock",), {"speed": "10G"}),
    ProductSpec(
        "Port 100G", "Port", "PORT", "A 100 Gbit/s port", ("PortBlock",), {"speed": "100G"}
    ),
    ProductSpec("L2VPN", "L2VPN", "L2VPN", "A VLAN-based point-to-point L2VPN", ("L2vpnBlock",)),
    ProductSpec("User group", "UserGroup", "GROUP", "A group of users", ("UserGroupBlock",)),
    ProductSpec("User", "User", "USER", "A user in a group", ("UserBlock",)),
)
DEMO_WORKFLOW_NAMES = tuple(name for names in PRODUCT_TYPE_WORKFLOWS.values() for name in names)


def ensure_catalogue() -> dict[str, Product]:
    """Product types, blocks, products, fixed inputs and product ↔ workflow links."""
    services.sync_workflows()
    types = {
        name: ProductType.objects.update_or_create(name=name, defaults={"description": text})[0]
        for name, text in PRODUCT_TYPES.items()
    }
    blocks = {
        name: ProductBlock.objects.update_or_create(
            name=name, defaults={"tag": tag, "description": text}
        )[0]
        for name, (tag, text) in PRODUCT_BLOCKS.items()
    }
    products: dict[str, Product] = {}
    for spec in PRODUCTS:
        product, _ = Product.objects.get_or_create(
            name=spec.name,
            defaults={
                "product_type": types[spec.product_type],
                "tag": spec.tag,
                "description": spec.description,
            },
        )
        product.product_blocks.add(*(blocks[name] for name in spec.blocks))
        for name, value in spec.fixed_inputs.items():
            FixedInput.objects.update_or_create(product=product, name=name,
                                                defaults={"value": value})
        link_product_workflows(
            product=product,
            workflows=list(
                Workflow.objects.filter(name__in=PRODUCT_TYPE_WORKFLOWS[spec.product_type])
            ),
        )
        products[spec.name] = product
    return products


def run_workflow(
    name: str, *, product: Product, page: dict[str, Any], answers: tuple[dict, ...] = ()
) -> Subscription:
    """Run a create workflow to the end in this process, answering its input steps."""
    process = services.start_process(workflow_name=name, product=product.pk, input_pages=[page])
    run_process(str(process.pk))
    process = Process.objects.get(pk=process.pk)
    for answer in answers:
        if process.status != ProcessStatus.SUSPENDED:
            break
        services.resume_process(process=process, input_pages=[answer])
        run_process(str(process.pk))
        process = Process.objects.get(pk=process.pk)
    if process.status != ProcessStatus.COMPLETED:
        raise CommandError(
            f"demo: {name} ended {process.status}: {process.failed_reason or 'no reason'}"
        )
    return Subscription.objects.get(pk=process.state["subscription_id"])


def create_examples(products: dict[str, Product]) -> list[Subscription]:
    """Two nodes, a port on each, an L2VPN between them, a user group with a user."""
    confirm = ({"confirm": True, "comment": "demo data"},)
    ams = run_workflow(
        "create_node", product=products["Node"], answers=confirm,
        page={"customer_id": "noc", "hostname": "ams-core-01", "role": "core", "site": "AMS1"},
    )
    lon = run_workflow(
        "create_node", product=products["Node"], answers=confirm,
        page={"customer_id": "noc", "hostname": "lon-edge-01", "role": "edge", "site": "LON2"},
    )
    port_a = run_workflow(
        "create_port", product=products["Port 10G"],
        page={"customer_id": "acme", "node": str(ams.pk), "port_name": "xe-0/0/1"},
    )
    port_b = run_workflow(
        "create_port", product=products["Port 100G"],
        page={"customer_id": "acme", "node": str(lon.pk), "port_name": "et-0/0/0",
              "speed": "10G"},
    )
    l2vpn = run_workflow(
        "create_l2vpn", product=products["L2VPN"],
        page={"customer_id": "acme", "port_a": str(port_a.pk), "port_b": str(port_b.pk),
              "vlan": 100},
    )
    group = run_workflow(
        "create_user_group", product=products["User group"],
        page={"customer_id": "acme", "group_name": "network-engineers"},
    )
    user = run_workflow(
        "create_user", product=products["User"],
        page={"customer_id": "acme", "username": "alice", "age": 34,
              "user_group": str(group.pk)},
    )
    return [ams, lon, port_a, port_b, l2vpn, group, user]


def load(stdout) -> None:
    missing = [name for name in DEMO_WORKFLOW_NAMES if registry.get_definition(name) is None]
    if missing:
        stdout.write(
            "subscriptions demo skipped: its workflows are not registered (add "
            "subscriptions.demo_workflows to ORCHESTRATOR_WORKFLOW_MODULES)"
        )
        return
    products = ensure_catalogue()
    stdout.write(f"demo products: {', '.join(products)}")
    if Subscription.objects.exists():
        stdout.write("demo subscriptions skipped: subscriptions exist already")
        return
    examples = create_examples(products)
    stdout.write(
        f"demo subscriptions created by their workflows: "
        f"{', '.join(s.description for s in examples)}"
    )
