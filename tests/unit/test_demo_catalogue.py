"""The demo catalogue (subscriptions.demo_workflows) and its loader (subscriptions.demo)."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import Group
from django.db.models import Count

from orchestrator import selectors, services
from orchestrator.exceptions import Conflict, FormInvalid
from orchestrator.forms import make_form, validate_pages
from orchestrator.models import Process, ProcessStep, Workflow
from subscriptions import demo
from subscriptions.demo_workflows import WORKFLOWS, Node, create_port_form
from subscriptions.models import FixedInput, Product, ProductBlock, ProductType, Subscription
from tests.helpers import run

pytestmark = pytest.mark.django_db


@pytest.fixture
def loaded(synced) -> dict[str, Subscription]:
    demo.load(io.StringIO())
    return {s.description.split(" (")[0]: s for s in Subscription.objects.all()}


def product(name: str) -> Product:
    return Product.objects.get(name=name)


def by_type(product_type: str):
    return Subscription.objects.filter(product__product_type__name=product_type)


def counts() -> dict[str, int]:
    return {
        "types": ProductType.objects.count(),
        "blocks": ProductBlock.objects.count(),
        "products": Product.objects.count(),
        "fixed": FixedInput.objects.count(),
        "links": Product.objects.aggregate(n=Count("workflows"))["n"],
        "block_links": Product.objects.aggregate(n=Count("product_blocks"))["n"],
        "workflows": Workflow.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "processes": Process.objects.count(),
        "steps": ProcessStep.objects.count(),
        "groups": Group.objects.count(),
    }


def start_node(hostname: str = "fra-access-01", **extra) -> Process:
    page = {"customer_id": "noc", "hostname": hostname, "role": "access", "site": "FRA1",
            **extra}
    return services.start_process(
        workflow_name="create_node", product=product("Node").pk, input_pages=[page]
    )


def test_every_demo_workflow_is_registered_and_linked_to_its_products(loaded):
    names = {definition.name for definition in WORKFLOWS}
    assert names <= set(Workflow.objects.values_list("name", flat=True))
    linked = set(Product.objects.values_list("workflows__name", flat=True))
    assert names <= linked
    assert set(product("Node").workflows.values_list("target", flat=True)) == {
        "create", "modify", "terminate", "validate"
    }
    assert product("Port 10G").fixed_inputs.get(name="speed").value == "10G"
    assert product("Port 100G").fixed_inputs.get(name="speed").value == "100G"


def test_load_twice_changes_nothing(loaded):
    before = counts()
    out = io.StringIO()
    demo.load(out)
    assert counts() == before
    assert "skipped" in out.getvalue()


def test_examples_end_active_and_in_sync_with_their_history(loaded):
    examples = Subscription.objects.all()
    assert examples.count() == 7
    assert set(examples.values_list("status", "insync")) == {("active", True)}
    assert not Process.objects.exclude(status="completed").exists()
    assert by_type("Node").count() == 2 and by_type("Port").count() == 2
    nodes = {s.instance_values["hostname"]: s for s in by_type("Node")}
    loopbacks = {s.instance_values["loopback"] for s in nodes.values()}
    assert loopbacks == {"10.255.255.1", "10.255.255.2"}
    for port in by_type("Port"):
        assert [str(s.pk) for s in port.depends_on.all()] == [port.instance_values["node_id"]]
    l2vpn = by_type("L2VPN").get()
    assert set(l2vpn.depends_on.all()) == set(by_type("Port"))
    assert l2vpn.instance_values["vlan"] == 100
    configs = l2vpn.instance_values["endpoint_configs"]
    assert any("neighbor 10.255.255.2" in text for text in configs.values())
    user = by_type("User").get()
    assert list(user.depends_on.all()) == [by_type("UserGroup").get()]
    node_process = nodes["ams-core-01"].processes.get()
    suspended = ProcessStep.objects.filter(process=node_process, status="suspend")
    assert suspended.get().name == "Confirm node configuration"
    Node.from_subscription(nodes["ams-core-01"].pk)  # the stored values make a valid model


def test_terminating_a_port_in_use_by_the_l2vpn_is_refused_naming_it(loaded):
    l2vpn = by_type("L2VPN").get()
    port = by_type("Port").first()
    with pytest.raises(Conflict, match="in use by") as refused:
        services.start_process(workflow_name="terminate_port", subscription=port.pk)
    assert str(l2vpn.pk) in refused.value.message and l2vpn.description in refused.value.message
    port.refresh_from_db()
    assert port.insync is True
    assert run(services.start_process(workflow_name="terminate_l2vpn",
                                      subscription=l2vpn.pk)).status == "completed"
    assert run(services.start_process(workflow_name="terminate_port",
                                      subscription=port.pk)).status == "completed"
    port.refresh_from_db()
    assert port.status == "terminated"


def test_terminating_a_node_with_live_ports_or_a_group_with_users_is_refused(loaded):
    for product_type, workflow, user_type in (
        ("Node", "terminate_node", "Port"),
        ("UserGroup", "terminate_user_group", "User"),
    ):
        for subscription in by_type(product_type):
            users = by_type(user_type).filter(depends_on=subscription)
            assert users.exists()
            with pytest.raises(Conflict, match="in use by") as refused:
                services.start_process(workflow_name=workflow, subscription=subscription.pk)
            assert all(str(u.pk) in refused.value.message for u in users)


@pytest.mark.parametrize(
    ("page", "field"),
    [
        ({"hostname": "Bad_Host"}, "hostname"),
        ({"hostname": "-edge"}, "hostname"),
        ({"hostname": "ams-core-01"}, "hostname"),  # a live node has it already
        ({"role": "spine"}, "role"),
        ({"site": "amsterdam"}, "site"),
    ],
)
def test_bad_create_node_input_names_the_field_and_stores_nothing(loaded, page, field):
    before = counts()
    with pytest.raises(FormInvalid) as invalid:
        start_node(**page)
    assert field in invalid.value.field_errors
    assert counts() == before


def test_create_node_suspends_for_confirmation_and_resumes(loaded):
    process = run(start_node())
    assert process.status == "suspended"
    assert process.planned_steps[process.position] == "Confirm node configuration"
    node = Subscription.objects.get(pk=process.state["subscription_id"])
    assert (node.status, node.insync) == ("provisioning", False)
    assert process.state["loopback"] == "10.255.255.3"
    assert "set system host-name fra-access-01" in process.state["config"]
    form = selectors.current_input_form(process)
    schema = validate_pages(form, [], state=process.state).next_form
    assert "10.255.255.3" in str(schema.base_fields["confirm"].label)
    with pytest.raises(FormInvalid) as invalid:
        services.resume_process(process=process, input_pages=[{"confirm": False}])
    assert "confirm" in invalid.value.field_errors
    services.resume_process(process=process, input_pages=[{"confirm": True, "comment": "ok"}])
    assert run(process).status == "completed"
    node.refresh_from_db()
    assert (node.status, node.insync) == ("active", True)
    assert node.instance_values["role"] == "access"
    assert process.state["pushed"]["hostname"] == "fra-access-01"


def test_validate_and_modify_node(loaded):
    node = by_type("Node").get(instance_values__hostname="ams-core-01")
    validate = run(services.start_process(workflow_name="validate_node", subscription=node.pk))
    assert validate.status == "completed", validate.failed_reason
    with pytest.raises(FormInvalid, match="Stale data"):
        services.start_process(workflow_name="modify_node", subscription=node.pk,
                               input_pages=[{"role": "edge", "description": "x", "version": 1}])
    modify = run(services.start_process(
        workflow_name="modify_node", subscription=node.pk,
        input_pages=[{"role": "edge", "description": "AMS edge", "version": node.version}],
    ))
    assert modify.status == "completed", modify.failed_reason
    node.refresh_from_db()
    assert node.instance_values["role"] == "edge" and node.description == "AMS edge"
    assert "bgp group customers" in node.instance_values["config"]
    # A corrupted loopback is caught by the validation.
    Subscription.objects.filter(pk=node.pk).update(
        instance_values={**node.instance_values, "loopback": "192.0.2.1"}
    )
    broken = run(services.start_process(workflow_name="validate_node", subscription=node.pk))
    assert broken.status == "inconsistent_data" and "192.0.2.1" in broken.failed_reason


def node_choices(user=None) -> set[str]:
    """The node ids the create_port form offers to `user` (None: the system)."""
    field = make_form(create_port_form(), user).fields["node"]
    return {str(value) for value, _ in field.choices if value != ""}


def test_create_port_form_offers_the_current_active_nodes(loaded):
    assert node_choices() == {str(pk) for pk in by_type("Node").values_list("pk", flat=True)}
    process = run(start_node())
    new_node = process.state["subscription_id"]
    assert new_node not in node_choices()  # not active yet
    services.resume_process(process=process, input_pages=[{"confirm": True}])
    run(process)
    assert new_node in node_choices()


def test_port_rules(loaded):
    node = by_type("Node").first()
    page = {"customer_id": "acme", "node": str(node.pk), "port_name": "xe-0/0/1"}
    taken_or_bad = [({}, "port_name"), ({"port_name": "eth0"}, "port_name"),
                    ({"node": "not-a-node"}, "node")]
    used = by_type("Port").get(instance_values__node_id=str(node.pk)).instance_values
    page["port_name"] = used["port_name"]
    for change, field in taken_or_bad:
        with pytest.raises(FormInvalid) as invalid:
            services.start_process(workflow_name="create_port", product=product("Port 10G").pk,
                                   input_pages=[{**page, **change}])
        assert field in invalid.value.field_errors
    too_fast = run(services.start_process(
        workflow_name="create_port", product=product("Port 10G").pk,
        input_pages=[{**page, "port_name": "xe-0/0/9", "speed": "100G"}],
    ))
    assert too_fast.status == "failed" and "A 10G port cannot run at 100G" in \
        too_fast.failed_reason
    port = by_type("Port").get(product__name="Port 10G", status="active")
    with pytest.raises(FormInvalid) as invalid:
        services.start_process(workflow_name="modify_port", subscription=port.pk,
                               input_pages=[{"speed": "100G"}])
    assert "speed" in invalid.value.field_errors
    modify = run(services.start_process(workflow_name="modify_port", subscription=port.pk,
                                        input_pages=[{"speed": "1G"}]))
    assert modify.status == "completed"
    port.refresh_from_db()
    assert port.instance_values["speed"] == "1G" and "speed 1g" in port.instance_values["config"]


def test_l2vpn_rules(loaded):
    port_a, port_b = by_type("Port").order_by("description")
    page = {"customer_id": "acme", "port_a": str(port_a.pk), "port_b": str(port_a.pk),
            "vlan": 200}
    with pytest.raises(FormInvalid) as invalid:
        services.start_process(workflow_name="create_l2vpn", product=product("L2VPN").pk,
                               input_pages=[page])
    assert "port_b" in invalid.value.field_errors
    for vlan, field in ((1, "vlan"), (4095, "vlan"), (100, "vlan")):  # 100 is in use
        with pytest.raises(FormInvalid) as invalid:
            services.start_process(
                workflow_name="create_l2vpn", product=product("L2VPN").pk,
                input_pages=[{**page, "port_b": str(port_b.pk), "vlan": vlan}],
            )
        assert field in invalid.value.field_errors
    second = run(services.start_process(
        workflow_name="create_l2vpn", product=product("L2VPN").pk,
        input_pages=[{**page, "port_b": str(port_b.pk)}],
    ))
    assert second.status == "completed", second.failed_reason
    l2vpn = Subscription.objects.get(pk=second.state["subscription_id"])
    assert l2vpn.instance_values["virtual_circuit_id"] == 2
    first = by_type("L2VPN").exclude(pk=l2vpn.pk).get()
    with pytest.raises(FormInvalid, match="vlan"):
        services.start_process(workflow_name="modify_l2vpn", subscription=l2vpn.pk,
                               input_pages=[{"vlan": 100}])
    modify = run(services.start_process(workflow_name="modify_l2vpn", subscription=first.pk,
                                        input_pages=[{"vlan": 300}]))
    assert modify.status == "completed", modify.failed_reason
    first.refresh_from_db()
    assert first.description.startswith("L2VPN vlan 300 ")
    assert all("vlan-id 300" in text for text in first.instance_values["endpoint_configs"].values())


def test_user_and_group_workflows(loaded):
    group = by_type("UserGroup").get()
    user = by_type("User").get()
    other = run(services.start_process(
        workflow_name="create_user_group", product=product("User group").pk,
        input_pages=[{"customer_id": "acme", "group_name": "operators"}],
    ))
    other_group = other.state["subscription_id"]
    with pytest.raises(FormInvalid, match="group_name"):
        services.start_process(workflow_name="create_user_group",
                               product=product("User group").pk,
                               input_pages=[{"customer_id": "acme", "group_name": "operators"}])
    moved = run(services.start_process(
        workflow_name="modify_user", subscription=user.pk,
        input_pages=[{"username": "alice", "age": 35, "user_group": other_group}],
    ))
    assert moved.status == "completed", moved.failed_reason
    user.refresh_from_db()
    assert [str(s.pk) for s in user.depends_on.all()] == [other_group]
    assert user.instance_values["age"] == 35
    assert run(services.start_process(workflow_name="terminate_user_group",
                                      subscription=group.pk)).status == "completed"
    assert run(services.start_process(workflow_name="terminate_user",
                                      subscription=user.pk)).status == "completed"


def test_without_the_demo_workflows_load_says_so_and_does_nothing(synced, monkeypatch):
    from orchestrator import registry

    monkeypatch.setattr(registry, "get_definition", lambda name: None)
    out = io.StringIO()
    demo.load(out)
    assert "ORCHESTRATOR_WORKFLOW_MODULES" in out.getvalue()
    assert not Product.objects.exists()


def test_a_run_that_lost_a_race_for_a_hostname_or_vlan_fails_clearly(loaded):
    first, second = start_node("par-core-01"), start_node("par-core-01")  # both forms valid
    assert run(first).status == "suspended"
    lost = run(second)
    assert lost.status == "failed" and "already called par-core-01" in lost.failed_reason
    port_a, port_b = by_type("Port")
    page = {"customer_id": "acme", "port_a": str(port_a.pk), "port_b": str(port_b.pk),
            "vlan": 700}
    first, second = (
        services.start_process(workflow_name="create_l2vpn", product=product("L2VPN").pk,
                               input_pages=[page])
        for _ in range(2)
    )
    assert run(first).status == "completed"
    lost = run(second)
    assert lost.status == "failed" and "VLAN 700 was taken" in lost.failed_reason
