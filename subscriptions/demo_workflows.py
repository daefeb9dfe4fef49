"""A demo catalogue for a network team (DESIGN §5, §10): nodes, ports, L2VPNs, users.

| product              | domain models (per lifecycle)        | workflows                        |
| -------------------- | ------------------------------------ | -------------------------------- |
| Node                 | NodeProvisioning → Node              | create/modify/terminate/validate |
| Port 10G, Port 100G  | PortProvisioning → Port              | create/modify/terminate          |
| L2VPN                | L2vpnProvisioning → L2vpn            | create/modify/terminate          |
| User group           | UserGroupProvisioning → UserGroup    | create/modify/terminate          |
| User                 | UserProvisioning → User              | create/modify/terminate          |

Relations: a port depends on its node, an L2VPN on its two ports, a user on its group;
so a node with live ports (a port with a live L2VPN, a group with live users) cannot be
terminated, and the refusal names what uses it. `subscriptions.demo.load` creates the
products and runs these workflows for a few example subscriptions.

Forms that offer existing subscriptions as choices use `SubscriptionChoiceField`: it offers
and accepts only the subscriptions the user filling in the form may view, read when the
form is shown or validated; modify forms are built from the subscription they run on
(current values as initial values, the hidden `version`).
"""

from __future__ import annotations

import ipaddress
import uuid
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import QuerySet

from orchestrator.catalogue import WorkflowDefinition, WorkflowTag, WorkflowType
from orchestrator.exceptions import ProcessFailureError
from orchestrator.workflow import State, StepList, begin, inputstep, step
from orchestrator.workflows.utils import (
    create_workflow,
    modify_workflow,
    terminate_workflow,
    validate_workflow,
)
from subscriptions.domain import SubscriptionModel
from subscriptions.forms import SubscriptionChoiceField
from subscriptions.models import FixedInput, Product, Subscription

# --- inventory rules ------------------------------------------------------------------------

LOOPBACK_POOL = ipaddress.ip_network("10.255.255.0/24")
ROLES = [("core", "Core"), ("edge", "Edge"), ("access", "Access")]
SPEEDS = ["1G", "10G", "25G", "40G", "100G"]
SPEED_MBIT = {"1G": 1_000, "10G": 10_000, "25G": 25_000, "40G": 40_000, "100G": 100_000}

hostname_validator = RegexValidator(
    r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
    "Use lowercase letters, digits and dashes (not at the start or end), e.g. ams-core-01.",
)
port_name_validator = RegexValidator(
    r"^(ge|xe|et)-\d{1,2}/\d{1,2}/\d{1,3}$",
    "Use an interface name such as xe-0/0/1 (ge-, xe- or et-, then fpc/pic/port).",
)
site_validator = RegexValidator(r"^[A-Z0-9]{2,10}$", "Use a site code such as AMS1.")


def live(product_type: str) -> QuerySet[Subscription]:
    """Subscriptions of a product type that are not terminated."""
    return Subscription.objects.filter(product__product_type__name=product_type).exclude(
        status="terminated"
    )


def active(product_type: str) -> QuerySet[Subscription]:
    """The active subscriptions of a product type, the choices of a form field."""
    return Subscription.objects.filter(
        product__product_type__name=product_type, status="active"
    ).order_by("description", "pk")


def current_subscription(subscription_id: Any) -> Subscription | None:
    """The subscription a modify form is built for; None when absent or malformed (the
    start then refuses it with the usual reason, not the form)."""
    if not subscription_id:
        return None
    try:
        return Subscription.objects.filter(pk=subscription_id).first()
    except (ValueError, ValidationError):
        return None


def lock_allocations(product_type: str) -> None:
    """Serialise allocations (addresses, circuit ids) of one product type: the product rows
    stay locked until the step's transaction commits (SQLite serialises writers anyway)."""
    list(
        Product.objects.select_for_update(of=("self",))
        .filter(product_type__name=product_type)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def refuse_out_of_sync(form: forms.Form, field: str, subscription: Subscription) -> None:
    """The chosen subscription (one the user may view) must not be in a workflow's hands."""
    if not subscription.insync:
        form.add_error(
            field,
            f"{subscription.description} is out of sync (a workflow is changing it); "
            "try again when it is done.",
        )


def version_field() -> forms.IntegerField:
    return forms.IntegerField(
        required=False,
        widget=forms.HiddenInput,
        help_text="The subscription version this form was filled against.",
    )


# --- Node -----------------------------------------------------------------------------------


class NodeProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    hostname: str | None = None
    role: str | None = None
    site: str | None = None
    loopback: str | None = None
    config: str | None = None


class Node(NodeProvisioning, lifecycles=["active"]):
    hostname: str
    role: str
    site: str
    loopback: str
    config: str


def node_config(hostname: str, role: str, site: str, loopback: str) -> str:
    """The configuration snippet pushed to a node (Junos set-style)."""
    lines = [
        f"set system host-name {hostname}",
        f'set system location building "{site}"',
        f"set interfaces lo0 unit 0 family inet address {loopback}/32",
        f"set routing-options router-id {loopback}",
        "set protocols isis interface lo0.0 passive",
    ]
    lines += {
        "core": ["set protocols mpls interface all", "set protocols ldp interface all"],
        "edge": ["set protocols bgp group customers type external"],
        "access": ["set protocols rstp interface all"],
    }.get(role, [])
    return "\n".join(lines)


class CreateNodeForm(forms.Form):
    customer_id = forms.CharField(max_length=100, initial="noc")
    hostname = forms.CharField(
        max_length=63,
        validators=[hostname_validator],
        help_text="Lowercase letters, digits and dashes, e.g. ams-core-01.",
    )
    role = forms.ChoiceField(choices=ROLES)
    site = forms.CharField(max_length=10, validators=[site_validator], help_text="e.g. AMS1")

    def clean_hostname(self) -> str:
        hostname = self.cleaned_data["hostname"]
        if live("Node").filter(instance_values__hostname=hostname).exists():
            raise ValidationError(f"A live node is already called {hostname}.")
        return hostname


@step("Construct node")
def construct_node(subscription: NodeProvisioning, hostname: str, role: str, site: str) -> State:
    lock_allocations("Node")  # the form checked the hostname; a concurrent run may have won
    if live("Node").filter(instance_values__hostname=hostname).exclude(
        pk=subscription.subscription_id
    ).exists():
        raise ProcessFailureError(f"A live node is already called {hostname}")
    subscription.hostname, subscription.role, subscription.site = hostname, role, site
    subscription.description = f"Node {hostname} ({role}, {site})"
    subscription.status = "provisioning"
    return {"subscription": subscription}


@step("Allocate loopback address")
def allocate_loopback(subscription: NodeProvisioning) -> State:
    """The first free address of the pool, starting at the number of live nodes."""
    lock_allocations("Node")
    others = live("Node").exclude(pk=subscription.subscription_id)
    used = {values.get("loopback") for values in others.values_list("instance_values", flat=True)}
    hosts = list(LOOPBACK_POOL.hosts())
    start = others.count() % len(hosts)
    for offset in range(len(hosts)):
        candidate = str(hosts[(start + offset) % len(hosts)])
        if candidate not in used:
            subscription.loopback = candidate
            return {"subscription": subscription, "loopback": candidate}
    raise ProcessFailureError(
        f"The loopback pool {LOOPBACK_POOL} is exhausted", details={"used": len(used)}
    )


@step("Generate node configuration")
def generate_node_config(subscription: NodeProvisioning) -> State:
    config = node_config(
        subscription.hostname or "", subscription.role or "", subscription.site or "",
        subscription.loopback or "",
    )
    subscription.config = config
    return {"subscription": subscription, "config": config}


@inputstep("Confirm node configuration", assignee="operator")
def confirm_node_config(hostname: str, loopback: str, config: str) -> type[forms.Form]:
    class ConfirmNodeConfigForm(forms.Form):
        confirm = forms.BooleanField(
            required=True,
            label=f"Provision {hostname} with loopback {loopback}",
            help_text="The configuration to push:\n" + config,
        )
        comment = forms.CharField(max_length=500, required=False)

    return ConfirmNodeConfigForm


@step("Provision node")
def provision_node(subscription: NodeProvisioning, confirm: bool, comment: str = "") -> State:
    assert confirm, "the configuration was not confirmed"
    # Every field of the active model is required: an incomplete node fails here.
    node = Node.from_other_lifecycle(subscription, "active")
    lines = len(node.config.splitlines())
    return {"subscription": node, "pushed": {"hostname": node.hostname, "lines": lines}}


@create_workflow("Create a node (router or switch)", initial_input_form=CreateNodeForm)
def create_node() -> StepList:
    return (
        begin
        >> construct_node
        >> allocate_loopback
        >> generate_node_config
        >> confirm_node_config
        >> provision_node
    )


def modify_node_form(subscription_id: str | None = None) -> type[forms.Form]:
    row = current_subscription(subscription_id)
    values = row.instance_values if row is not None else {}

    class ModifyNodeForm(forms.Form):
        role = forms.ChoiceField(choices=ROLES, initial=values.get("role"))
        description = forms.CharField(
            max_length=255, initial=row.description if row is not None else None
        )
        version = version_field()

    ModifyNodeForm.base_fields["version"].initial = row.version if row is not None else None
    return ModifyNodeForm


@step("Update node")
def update_node(subscription: Node, role: str, description: str) -> State:
    old = {"role": subscription.role, "description": subscription.description}
    subscription.role, subscription.description = role, description
    subscription.config = node_config(
        subscription.hostname, role, subscription.site, subscription.loopback
    )
    return {"subscription": subscription, "previous": old}


@modify_workflow("Change the role or description of a node", initial_input_form=modify_node_form)
def modify_node() -> StepList:
    return begin >> update_node


@step("Remove node configuration")
def decommission_node(subscription: NodeProvisioning | Node) -> State:
    return {"decommissioned": subscription.hostname, "released_loopback": subscription.loopback}


@terminate_workflow("Terminate a node")
def terminate_node() -> StepList:
    return begin >> decommission_node


@step("Check loopback and hostname")
def check_node(subscription: Node) -> State:
    assert hostname_validator.regex.match(subscription.hostname), (
        f"hostname {subscription.hostname!r} is not valid"
    )
    address = ipaddress.ip_address(subscription.loopback)
    assert address in LOOPBACK_POOL, f"loopback {address} is outside {LOOPBACK_POOL}"
    assert f"set system host-name {subscription.hostname}" in subscription.config, (
        "the configuration does not carry the hostname"
    )
    assert f"address {address}/32" in subscription.config, (
        "the configuration does not carry the loopback"
    )
    others = live("Node").exclude(pk=subscription.subscription_id)
    for values in others.values_list("instance_values", flat=True):
        assert values.get("loopback") != subscription.loopback, f"loopback {address} is shared"
        assert values.get("hostname") != subscription.hostname, "hostname is shared"
    return {"node_checks": ["hostname", "loopback", "config", "unique"]}


@validate_workflow("Check a node's loopback, hostname and configuration")
def validate_node() -> StepList:
    return begin >> check_node


# --- Port -----------------------------------------------------------------------------------


class PortProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    node_id: uuid.UUID | None = None
    node_hostname: str | None = None
    port_name: str | None = None
    speed: str | None = None
    capacity: str | None = None  # the product's fixed input `speed`
    config: str | None = None


class Port(PortProvisioning, lifecycles=["active"]):
    node_id: uuid.UUID
    node_hostname: str
    port_name: str
    speed: str
    capacity: str
    config: str


def port_config(port_name: str, speed: str, description: str) -> str:
    return "\n".join([
        f'set interfaces {port_name} description "{description}"',
        f"set interfaces {port_name} speed {speed.lower()}",
        f"set interfaces {port_name} flexible-vlan-tagging",
        f"set interfaces {port_name} encapsulation flexible-ethernet-services",
    ])


def product_speed(product_id: int) -> str:
    speed = FixedInput.objects.filter(product_id=product_id, name="speed").values_list(
        "value", flat=True
    ).first()
    if speed not in SPEED_MBIT:
        raise ProcessFailureError(
            f"The product has no valid fixed input 'speed' (found {speed!r})",
            details={"product": product_id, "speeds": SPEEDS},
        )
    return speed


def create_port_form() -> type[forms.Form]:
    class CreatePortForm(forms.Form):
        customer_id = forms.CharField(max_length=100)
        node = SubscriptionChoiceField(active("Node"), help_text="The active node the port is on.")
        port_name = forms.CharField(
            max_length=20, validators=[port_name_validator], help_text="e.g. xe-0/0/1"
        )
        speed = forms.ChoiceField(
            choices=[("", "The product's speed"), *((s, s) for s in SPEEDS)],
            required=False,
            help_text="Line rate; at most the product's port speed (Port 10G: 10G).",
        )

        def clean(self) -> dict[str, Any]:
            data = super().clean()
            node, name = data.get("node"), data.get("port_name")
            if node:
                refuse_out_of_sync(self, "node", node)
            if node and name:
                taken = live("Port").filter(
                    instance_values__node_id=str(node.pk), instance_values__port_name=name
                )
                if taken.exists():
                    self.add_error("port_name", f"{name} is already in use on that node.")
            return data

    return CreatePortForm


@step("Construct port")
def construct_port(
    subscription: PortProvisioning, product: int, node: str, port_name: str, speed: str = ""
) -> State:
    parent = Node.from_subscription(node)  # refuses a node that is no longer active
    capacity = product_speed(product)
    speed = speed or capacity
    if SPEED_MBIT[speed] > SPEED_MBIT[capacity]:
        raise ProcessFailureError(
            f"A {capacity} port cannot run at {speed}",
            details={"capacity": capacity, "speed": speed},
        )
    subscription.node_id, subscription.node_hostname = parent.subscription_id, parent.hostname
    subscription.port_name, subscription.speed, subscription.capacity = port_name, speed, capacity
    subscription.description = f"Port {parent.hostname} {port_name} ({speed})"
    subscription.depends_on = [parent.subscription_id]
    subscription.status = "provisioning"
    return {"subscription": subscription}


@step("Configure port on node")
def configure_port(subscription: PortProvisioning) -> State:
    config = port_config(
        subscription.port_name or "", subscription.speed or "", subscription.description
    )
    subscription.config = config
    return {"subscription": subscription, "config": config}


@step("Provision port")
def provision_port(subscription: PortProvisioning) -> State:
    return {"subscription": Port.from_other_lifecycle(subscription, "active")}


@create_workflow("Create a port on a node", initial_input_form=create_port_form)
def create_port() -> StepList:
    return begin >> construct_port >> configure_port >> provision_port


def modify_port_form(subscription_id: str | None = None) -> type[forms.Form]:
    row = current_subscription(subscription_id)
    values = row.instance_values if row is not None else {}
    capacity = values.get("capacity", SPEEDS[-1])
    allowed = [s for s in SPEEDS if SPEED_MBIT[s] <= SPEED_MBIT.get(capacity, 0)]

    class ModifyPortForm(forms.Form):
        speed = forms.ChoiceField(
            choices=[(s, s) for s in allowed],
            initial=values.get("speed"),
            help_text=f"Line rate, at most the port's {capacity}.",
        )
        version = version_field()

    ModifyPortForm.base_fields["version"].initial = row.version if row is not None else None
    return ModifyPortForm


@step("Change port speed")
def update_port_speed(subscription: Port, speed: str) -> State:
    old = subscription.speed
    subscription.speed = speed
    subscription.description = (
        f"Port {subscription.node_hostname} {subscription.port_name} ({speed})"
    )
    subscription.config = port_config(subscription.port_name, speed, subscription.description)
    return {"subscription": subscription, "previous_speed": old}


@modify_workflow("Change the speed of a port", initial_input_form=modify_port_form)
def modify_port() -> StepList:
    return begin >> update_port_speed


@step("Remove port configuration")
def decommission_port(subscription: PortProvisioning | Port) -> State:
    return {"decommissioned": f"{subscription.node_hostname} {subscription.port_name}"}


@terminate_workflow("Terminate a port")
def terminate_port() -> StepList:
    return begin >> decommission_port


# --- L2VPN ----------------------------------------------------------------------------------


class L2vpnProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    vlan: int | None = None
    port_a_id: uuid.UUID | None = None
    port_b_id: uuid.UUID | None = None
    virtual_circuit_id: int | None = None
    endpoint_configs: dict[str, str] = {}


class L2vpn(L2vpnProvisioning, lifecycles=["active"]):
    vlan: int
    port_a_id: uuid.UUID
    port_b_id: uuid.UUID
    virtual_circuit_id: int


def vlan_taken(vlan: int, ports: list[str], exclude: Any = None) -> bool:
    """Whether a live L2VPN other than `exclude` uses `vlan` on one of `ports`."""
    others = live("L2VPN").filter(instance_values__vlan=vlan)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    for values in others.values_list("instance_values", flat=True):
        if {values.get("port_a_id"), values.get("port_b_id")} & set(ports):
            return True
    return False


def create_l2vpn_form() -> type[forms.Form]:
    class CreateL2vpnForm(forms.Form):
        customer_id = forms.CharField(max_length=100)
        port_a = SubscriptionChoiceField(active("Port"), label="Port A")
        port_b = SubscriptionChoiceField(active("Port"), label="Port B")
        vlan = forms.IntegerField(min_value=2, max_value=4094, label="VLAN")

        def clean(self) -> dict[str, Any]:
            data = super().clean()
            port_a, port_b, vlan = data.get("port_a"), data.get("port_b"), data.get("vlan")
            if port_a and port_b and port_a == port_b:
                self.add_error("port_b", "Choose two different ports.")
            for field in ("port_a", "port_b"):
                if data.get(field):
                    refuse_out_of_sync(self, field, data[field])
            ends = [str(port_a.pk), str(port_b.pk)] if port_a and port_b else []
            if ends and vlan is not None and vlan_taken(vlan, ends):
                self.add_error("vlan", f"VLAN {vlan} is already used on one of these ports.")
            return data

    return CreateL2vpnForm


def endpoint_configs(vlan: int, circuit: int, port_a: Port, port_b: Port) -> dict[str, str]:
    """Per endpoint: the VLAN unit and the pseudowire to the other end's loopback."""
    loopbacks = {
        str(node.subscription_id): node.loopback
        for node in (Node.from_subscription(port_a.node_id), Node.from_subscription(port_b.node_id))
    }
    configs = {}
    for here, there in ((port_a, port_b), (port_b, port_a)):
        unit = f"{here.port_name}.{vlan}"
        configs[f"{here.node_hostname}:{here.port_name}"] = "\n".join([
            f"set interfaces {here.port_name} unit {vlan} vlan-id {vlan}",
            f"set interfaces {here.port_name} unit {vlan} encapsulation vlan-ccc",
            f"set protocols l2circuit neighbor {loopbacks[str(there.node_id)]} "
            f"interface {unit} virtual-circuit-id {circuit}",
        ])
    return configs


@step("Construct L2VPN")
def construct_l2vpn(subscription: L2vpnProvisioning, port_a: str, port_b: str, vlan: int) -> State:
    end_a, end_b = Port.from_subscription(port_a), Port.from_subscription(port_b)
    subscription.vlan, subscription.port_a_id, subscription.port_b_id = vlan, port_a, port_b
    subscription.depends_on = [end_a.subscription_id, end_b.subscription_id]
    subscription.description = (
        f"L2VPN vlan {vlan} {end_a.node_hostname}:{end_a.port_name} - "
        f"{end_b.node_hostname}:{end_b.port_name}"
    )
    subscription.status = "provisioning"
    return {"subscription": subscription}


@step("Allocate virtual circuit id")
def allocate_circuit(subscription: L2vpnProvisioning) -> State:
    lock_allocations("L2VPN")
    every = Subscription.objects.filter(product__product_type__name="L2VPN").exclude(
        pk=subscription.subscription_id
    )
    used = [v.get("virtual_circuit_id") or 0 for v in every.values_list("instance_values",
                                                                          flat=True)]
    ports = [str(subscription.port_a_id), str(subscription.port_b_id)]
    if vlan_taken(subscription.vlan or 0, ports, exclude=subscription.subscription_id):
        raise ProcessFailureError(f"VLAN {subscription.vlan} was taken on one of the ports")
    subscription.virtual_circuit_id = max(used, default=0) + 1
    return {"subscription": subscription, "virtual_circuit_id": subscription.virtual_circuit_id}


@step("Configure both endpoints")
def configure_l2vpn(subscription: L2vpnProvisioning) -> State:
    port_a = Port.from_subscription(subscription.port_a_id)
    port_b = Port.from_subscription(subscription.port_b_id)
    subscription.endpoint_configs = endpoint_configs(
        subscription.vlan or 0, subscription.virtual_circuit_id or 0, port_a, port_b
    )
    return {"subscription": subscription}


@step("Provision L2VPN")
def provision_l2vpn(subscription: L2vpnProvisioning) -> State:
    return {"subscription": L2vpn.from_other_lifecycle(subscription, "active")}


@create_workflow("Create an L2VPN between two ports", initial_input_form=create_l2vpn_form)
def create_l2vpn() -> StepList:
    return begin >> construct_l2vpn >> allocate_circuit >> configure_l2vpn >> provision_l2vpn


def modify_l2vpn_form(subscription_id: str | None = None) -> type[forms.Form]:
    row = current_subscription(subscription_id)
    values = row.instance_values if row is not None else {}
    ports = [str(values.get("port_a_id")), str(values.get("port_b_id"))]

    class ModifyL2vpnForm(forms.Form):
        vlan = forms.IntegerField(
            min_value=2, max_value=4094, label="VLAN", initial=values.get("vlan")
        )
        version = version_field()

        def clean_vlan(self) -> int:
            vlan = self.cleaned_data["vlan"]
            if row is not None and vlan_taken(vlan, ports, exclude=row.pk):
                raise ValidationError(f"VLAN {vlan} is already used on one of its ports.")
            return vlan

    ModifyL2vpnForm.base_fields["version"].initial = row.version if row is not None else None
    return ModifyL2vpnForm


@step("Change VLAN")
def update_l2vpn_vlan(subscription: L2vpn, vlan: int) -> State:
    old = subscription.vlan
    port_a = Port.from_subscription(subscription.port_a_id)
    port_b = Port.from_subscription(subscription.port_b_id)
    subscription.vlan = vlan
    subscription.description = subscription.description.replace(f"vlan {old} ", f"vlan {vlan} ")
    subscription.endpoint_configs = endpoint_configs(
        vlan, subscription.virtual_circuit_id, port_a, port_b
    )
    return {"subscription": subscription, "previous_vlan": old}


@modify_workflow("Change the VLAN of an L2VPN", initial_input_form=modify_l2vpn_form)
def modify_l2vpn() -> StepList:
    return begin >> update_l2vpn_vlan


@step("Remove both endpoints")
def decommission_l2vpn(subscription: L2vpnProvisioning | L2vpn) -> State:
    return {"removed_endpoints": sorted(subscription.endpoint_configs)}


@terminate_workflow("Terminate an L2VPN")
def terminate_l2vpn() -> StepList:
    return begin >> decommission_l2vpn


# --- User group and user (as orchestrator-core's example) ------------------------------------


class UserGroupProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    group_name: str | None = None


class UserGroup(UserGroupProvisioning, lifecycles=["active"]):
    group_name: str


class UserProvisioning(SubscriptionModel, lifecycles=["initial", "provisioning"]):
    username: str | None = None
    age: int | None = None
    group_id: uuid.UUID | None = None


class User(UserProvisioning, lifecycles=["active"]):
    username: str
    group_id: uuid.UUID


def group_name_field(initial: str | None = None) -> forms.CharField:
    return forms.CharField(max_length=50, validators=[hostname_validator], initial=initial,
                           help_text="Lowercase letters, digits and dashes.")


class CreateUserGroupForm(forms.Form):
    customer_id = forms.CharField(max_length=100)
    group_name = group_name_field()

    def clean_group_name(self) -> str:
        name = self.cleaned_data["group_name"]
        if live("UserGroup").filter(instance_values__group_name=name).exists():
            raise ValidationError(f"A live group is already called {name}.")
        return name


@step("Construct user group")
def construct_user_group(subscription: UserGroupProvisioning, group_name: str) -> State:
    subscription.group_name = group_name
    subscription.description = f"User group {group_name}"
    return {"subscription": UserGroup.from_other_lifecycle(subscription, "active")}


@create_workflow("Create a user group", initial_input_form=CreateUserGroupForm)
def create_user_group() -> StepList:
    return begin >> construct_user_group


def modify_user_group_form(subscription_id: str | None = None) -> type[forms.Form]:
    row = current_subscription(subscription_id)
    values = row.instance_values if row is not None else {}

    class ModifyUserGroupForm(forms.Form):
        group_name = group_name_field(values.get("group_name"))
        version = version_field()

    ModifyUserGroupForm.base_fields["version"].initial = row.version if row is not None else None
    return ModifyUserGroupForm


@step("Rename user group")
def rename_user_group(subscription: UserGroup, group_name: str) -> State:
    subscription.group_name = group_name
    subscription.description = f"User group {group_name}"
    return {"subscription": subscription}


@modify_workflow("Rename a user group", initial_input_form=modify_user_group_form)
def modify_user_group() -> StepList:
    return begin >> rename_user_group


@step("Remove user group")
def remove_user_group(subscription: UserGroupProvisioning | UserGroup) -> State:
    return {"removed_group": subscription.group_name}


@terminate_workflow("Terminate a user group")
def terminate_user_group() -> StepList:
    return begin >> remove_user_group


def user_form(row: Subscription | None = None) -> type[forms.Form]:
    values = row.instance_values if row is not None else {}

    class UserForm(forms.Form):
        username = forms.CharField(max_length=32, validators=[hostname_validator],
                                   initial=values.get("username"))
        age = forms.IntegerField(min_value=0, max_value=150, required=False,
                                 initial=values.get("age"))
        user_group = SubscriptionChoiceField(active("UserGroup"), initial=values.get("group_id"))

        def clean(self) -> dict[str, Any]:
            data = super().clean()
            if data.get("user_group"):
                refuse_out_of_sync(self, "user_group", data["user_group"])
            return data

    return UserForm


def create_user_form() -> type[forms.Form]:
    class CreateUserForm(user_form()):
        customer_id = forms.CharField(max_length=100)

    return CreateUserForm


def modify_user_form(subscription_id: str | None = None) -> type[forms.Form]:
    row = current_subscription(subscription_id)

    class ModifyUserForm(user_form(row)):
        version = version_field()

    ModifyUserForm.base_fields["version"].initial = row.version if row is not None else None
    return ModifyUserForm


def apply_user(user: UserProvisioning, username: str, age: int | None, user_group: str) -> None:
    group = UserGroup.from_subscription(user_group)
    user.username, user.age, user.group_id = username, age, group.subscription_id
    user.description = f"User {username} ({group.group_name})"
    user.depends_on = [group.subscription_id]


@step("Construct user")
def construct_user(
    subscription: UserProvisioning, username: str, user_group: str, age: int | None = None
) -> State:
    apply_user(subscription, username, age, user_group)
    return {"subscription": User.from_other_lifecycle(subscription, "active")}


@create_workflow("Create a user in a group", initial_input_form=create_user_form)
def create_user() -> StepList:
    return begin >> construct_user


@step("Update user")
def update_user(
    subscription: User, username: str, user_group: str, age: int | None = None
) -> State:
    apply_user(subscription, username, age, user_group)
    return {"subscription": subscription}


@modify_workflow("Change a user's name, age or group", initial_input_form=modify_user_form)
def modify_user() -> StepList:
    return begin >> update_user


@step("Remove user")
def remove_user(subscription: UserProvisioning | User) -> State:
    return {"removed_user": subscription.username}


@terminate_workflow("Terminate a user")
def terminate_user() -> StepList:
    return begin >> remove_user


# --- the catalogue ----------------------------------------------------------------------------

DEMO_TAG = WorkflowTag("demo", "Part of the demo catalogue")
PRODUCT_TYPE_WORKFLOWS: dict[str, tuple[str, ...]] = {
    "Node": ("create_node", "modify_node", "terminate_node", "validate_node"),
    "Port": ("create_port", "modify_port", "terminate_port"),
    "L2VPN": ("create_l2vpn", "modify_l2vpn", "terminate_l2vpn"),
    "UserGroup": ("create_user_group", "modify_user_group", "terminate_user_group"),
    "User": ("create_user", "modify_user", "terminate_user"),
}

WORKFLOWS = [
    WorkflowDefinition(
        name=name,
        module=__name__,
        function=name,
        type=WorkflowType.USER,
        product_types=(product_type,),
        tags=(DEMO_TAG,),
    )
    for product_type, names in PRODUCT_TYPE_WORKFLOWS.items()
    for name in names
]
