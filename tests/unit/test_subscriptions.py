"""Subscription lifecycles, in-sync locking and usability rules (DESIGN §5), in-process."""

from __future__ import annotations

import pytest

from orchestrator import services
from orchestrator.exceptions import Conflict, FormInvalid, NotFound
from orchestrator.models import Process, Workflow
from subscriptions import selectors
from subscriptions.models import Subscription
from subscriptions.services import set_in_sync
from tests.helpers import run, start_on

pytestmark = pytest.mark.django_db


def test_create_makes_an_active_in_sync_subscription_from_the_domain_model(create_box):
    box = create_box()
    assert (box.status, box.insync) == ("active", True)
    assert box.instance_values == {"name": "b1", "size": 5}
    assert box.description == "Box b1" and box.customer_id == "cust-1"
    assert box.start_date is not None
    assert box.processes.count() == 1


def test_modify_changes_the_subscription_and_puts_it_back_in_sync(create_box):
    box = create_box()
    version = box.version
    process = start_on(box, "modify_box", {"size": 9})
    box.refresh_from_db()
    assert box.insync is False  # marked out of sync in the start transaction
    assert run(process).status == "completed"
    box.refresh_from_db()
    assert (box.insync, box.instance_values["size"]) == (True, 9)
    assert box.version > version


def test_terminate_then_modify_is_refused_with_the_reason(create_box):
    box = create_box()
    assert run(start_on(box, "terminate_box")).status == "completed"
    box.refresh_from_db()
    assert box.status == "terminated" and box.end_date is not None
    with pytest.raises(Conflict, match="terminated"):
        start_on(box, "modify_box", {"size": 2})


def test_second_modify_is_refused_naming_the_running_process(create_box):
    box = create_box()
    first = start_on(box, "modify_box", {"size": 3})
    with pytest.raises(Conflict, match=str(first.pk)):
        start_on(box, "modify_box", {"size": 4})
    assert Process.objects.filter(workflow__name="modify_box").count() == 1


def test_terminate_is_refused_while_in_use_by_a_live_subscription(create_box):
    base = create_box("base")
    user = create_box("user", depends_on=str(base.pk))
    assert list(base.in_use_by.all()) == [user]
    with pytest.raises(Conflict, match="in use by"):
        start_on(base, "terminate_box")
    assert run(start_on(user, "terminate_box")).status == "completed"
    assert run(start_on(base, "terminate_box")).status == "completed"


def test_blocked_by_in_use_is_keyed_by_workflow_name_as_in_orchestrator_core(
    create_box, settings
):
    base = create_box("base")
    create_box("user", depends_on=str(base.pk))
    modify, terminate = Workflow.objects.get(name="modify_box"), Workflow.objects.get(
        name="terminate_box"
    )
    # The default: terminate is blocked while in use, modify is not.
    assert selectors.workflow_usability(modify, base).usable
    assert "in use by" in selectors.workflow_usability(terminate, base).reason
    # An orchestrator-core installation's setting, taken as it is.
    settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS = {"modify_box": True}
    assert "in use by" in selectors.workflow_usability(modify, base).reason
    assert "in use by" in selectors.workflow_usability(terminate, base).reason
    settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS = {"terminate_box": False}
    assert selectors.workflow_usability(terminate, base).usable
    # The earlier form, keyed by target, still applies to the workflows it does not name.
    settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS = {"modify": True, "modify_note": False}
    assert "in use by" in selectors.workflow_usability(modify, base).reason
    assert selectors.workflow_usability(Workflow.objects.get(name="modify_note"), base).usable


def test_a_modify_workflow_moves_a_subscription_to_another_product_of_its_type(
    create_box, box_product
):
    from subscriptions.models import Product, ProductType
    from subscriptions.services import link_product_workflows

    link_product_workflows(product=box_product, workflows=[Workflow.objects.get(name="move_box")])
    large = Product.objects.create(name="Box XL", product_type=box_product.product_type)
    other = Product.objects.create(name="Crate", product_type=ProductType.objects.create(
        name="Crate"))
    box = create_box()
    version = box.version

    refused = run(start_on(box, "move_box", {"product": "Crate"}))
    assert refused.status == "failed"
    assert ("cannot move from product Box (type Box) to Crate (type Crate): a subscription "
            "changes product only within its product type") in refused.failed_reason
    box.refresh_from_db()
    assert box.product == box_product and box.version == version
    services.abort_process(process=refused)
    set_in_sync(subscription=box)

    assert run(start_on(box, "move_box", {"product": str(large.pk)})).status == "completed"
    box.refresh_from_db()
    assert box.product == large and box.version == version + 1
    assert box.instance_values == {"name": "b1", "size": 5}
    assert other.subscriptions.count() == 0


def test_usability_settings_naming_nothing_are_reported_by_the_system_checks(settings):
    from django.core.checks import run_checks

    settings.WF_BLOCKED_BY_IN_USE_BY_SUBSCRIPTIONS = {"modify_box": True, "modify": True,
                                                      "modfy_box": True}
    settings.WF_USABLE_MAP = {"modify_box": ["active", "actve"]}
    settings.WF_USABLE_WHILE_OUT_OF_SYNC = "modify_box"
    messages = {(m.id, m.msg) for m in run_checks()}
    ids = {id_ for id_, _ in messages}
    assert {"subscriptions.W001", "subscriptions.W002", "subscriptions.E001",
            "subscriptions.E002"} <= ids
    text = " ".join(msg for _, msg in messages)
    assert "'modfy_box', which is no registered workflow" in text
    assert "'modify' is a workflow target" in text
    assert "unknown: actve" in text
    assert "'modify_box', which" not in text


def test_usability_settings_take_effect(create_box, settings):
    box = create_box()
    workflow = Workflow.objects.get(name="modify_box")
    assert selectors.workflow_usability(workflow, box).usable
    settings.WF_USABLE_MAP = {"modify_box": ["disabled"]}
    usability = selectors.workflow_usability(workflow, box)
    assert not usability.usable and "disabled" in usability.reason
    settings.WF_USABLE_MAP = {}
    Subscription.objects.filter(pk=box.pk).update(insync=False)
    box.refresh_from_db()
    assert "out of sync" in selectors.workflow_usability(workflow, box).reason
    settings.WF_USABLE_WHILE_OUT_OF_SYNC = ["modify_box"]
    assert selectors.workflow_usability(workflow, box).usable


def test_failed_modify_stays_out_of_sync_until_resumed(create_box, admin_user):
    box = create_box()
    process = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    assert process.status == "failed"
    box.refresh_from_db()
    assert box.insync is False and box.instance_values["size"] == 5
    reason = selectors.workflow_usability(Workflow.objects.get(name="modify_note"), box).reason
    assert str(process.pk) in reason
    with pytest.raises(Conflict, match=str(process.pk)):
        set_in_sync(subscription=box, user=admin_user)
    Process.objects.filter(pk=process.pk).update(
        state={**process.state, "fail": False}
    )
    services.resume_process(process=process)
    assert run(process).status == "completed"
    box.refresh_from_db()
    assert box.insync is True and box.instance_values["size"] == 7


def test_aborted_modify_leaves_it_out_of_sync_until_an_admin_resyncs(create_box, admin_user):
    box = create_box()
    process = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    services.abort_process(process=process, user=admin_user)
    box.refresh_from_db()
    assert box.insync is False
    set_in_sync(subscription=box, user=admin_user)
    box.refresh_from_db()
    assert box.insync is True


def test_stale_version_is_refused_and_changes_nothing(create_box):
    box = create_box()
    with pytest.raises(FormInvalid, match=f"given version 1 does not match the current version "
                                          f"{box.version}"):
        start_on(box, "modify_note", {"note": "x", "version": 1})
    box.refresh_from_db()
    assert box.insync is True and box.note == ""
    assert run(start_on(box, "modify_note", {"note": "hi", "version": box.version})).status \
        == "completed"
    box.refresh_from_db()
    assert box.note == "hi"


def test_validate_runs_beside_a_holding_modify_without_resyncing(create_box):
    box = create_box()
    modify = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    validate = run(start_on(box, "validate_box"))
    assert validate.status == "completed"
    assert validate.state["validation_resynced"] is False
    box.refresh_from_db()
    assert box.insync is False and modify.status == "failed"


def test_unknown_product_or_subscription_is_404_and_invalid_input_changes_nothing(create_box):
    with pytest.raises(NotFound):
        services.start_process(workflow_name="create_box", product=99999,
                               input_pages=[{"customer_id": "c", "name": "x", "size": 1}])
    with pytest.raises(NotFound):
        services.start_process(workflow_name="modify_box",
                               subscription="00000000-0000-0000-0000-000000000000",
                               input_pages=[{"size": 1}])
    with pytest.raises(NotFound):
        services.start_process(workflow_name="modify_box", subscription="not-a-uuid",
                               input_pages=[{"size": 1}])
    box = create_box()
    with pytest.raises(FormInvalid):
        start_on(box, "modify_box", {"size": 1000})
    box.refresh_from_db()
    assert box.insync is True


def test_subscription_workflows_list_reasons(create_box):
    box = create_box()
    listed = {w.name: u for w, u in selectors.subscription_workflows(box)}
    assert listed["modify_box"].usable and listed["modify_note"].usable
    assert "create_box" not in listed


def test_a_user_cannot_start_on_a_subscription_they_may_not_see(create_box, nobody):
    from guardian.shortcuts import assign_perm

    box = create_box()
    modify_note = Workflow.objects.get(name="modify_note")
    assign_perm("orchestrator.view_workflow", nobody, modify_note)
    assign_perm("orchestrator.start_workflow", nobody, modify_note)
    with pytest.raises(NotFound):
        services.start_process(workflow_name="modify_note", subscription=box.pk,
                               input_pages=[{"note": "x"}], user=nobody)
    box.refresh_from_db()
    assert box.insync is True
    assign_perm("subscriptions.view_subscription", nobody, box)
    process = services.start_process(workflow_name="modify_note", subscription=box.pk,
                                     input_pages=[{"note": "x"}], user=nobody)
    assert process.state["subscription_id"] == str(box.pk)


def test_process_page_and_api_link_the_subscription_only_for_those_who_may_see_it(
    create_box, operator, nobody, api, client
):
    from guardian.shortcuts import assign_perm

    box = create_box()
    process = box.processes.get()
    body = api(operator).get(f"/api/processes/{process.pk}/").json()
    assert body["subscriptions"] == [{"id": str(box.pk), "description": box.description}]
    client.force_login(operator)
    page = client.get(f"/processes/{process.pk}/").content.decode()
    assert f"/subscriptions/{box.pk}/" in page
    assign_perm("orchestrator.view_process", nobody, process)
    assert api(nobody).get(f"/api/processes/{process.pk}/").json()["subscriptions"] == []


def test_task_validate_products_starts_a_validation_per_active_subscription(create_box):
    from django_celery_beat.models import PeriodicTask

    healthy, retired = create_box("healthy"), create_box("retired")
    assert run(start_on(retired, "terminate_box")).status == "completed"
    task = run(services.start_process(workflow_name="task_validate_products", input_pages=[]))
    assert task.status == "completed"
    children = Process.objects.filter(parent=task)
    validated = {str(s.pk) for child in children for s in child.subscriptions.all()}
    assert str(healthy.pk) in validated and str(retired.pk) not in validated
    assert all(child.workflow.name == "validate_box" for child in children)
    for child in children:
        assert run(child).status == "completed"
    schedule = PeriodicTask.objects.get(name="workflow:task_validate_products")
    assert (schedule.crontab.minute, schedule.crontab.hour) == ("0", "2")


def test_judging_all_workflows_of_a_subscription_costs_no_query_per_workflow(create_box):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    box = create_box()
    product = box.product

    def queries() -> int:
        box.refresh_from_db()
        with CaptureQueriesContext(connection) as captured:
            selectors.subscription_workflows(box)
        return len(captured)

    many = queries()
    product.workflows.remove(*product.workflows.filter(name__in=["modify_box", "validate_box"]))
    assert queries() == many


@pytest.fixture
def crate(synced):
    """A product whose create workflow's form lets the customer out."""
    from subscriptions.models import Product, ProductType

    product = Product.objects.create(
        name="Crate", product_type=ProductType.objects.create(name="Crate"), tag="CRATE"
    )
    product.workflows.set(Workflow.objects.filter(name="create_crate"))
    return product


@pytest.mark.parametrize(
    ("page", "field"),
    [({}, "customer_id"), ({"customer_id": ""}, "customer_id"),
     ({"customer_id": "acme", "description": "d" * 300}, "description")],
)
def test_a_create_start_without_what_the_subscription_needs_is_a_400_and_stores_nothing(
    crate, operator, api, page, field
):
    response = api(operator).post(
        "/api/processes/",
        {"workflow": "create_crate", "product": crate.pk, "input": [page]},
        format="json",
    )
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body and field in body["detail"]
    assert not Process.objects.exists() and not Subscription.objects.exists()


def test_a_create_start_with_what_the_subscription_needs_runs(crate):
    process = run(services.start_process(
        workflow_name="create_crate", product=crate.pk, input_pages=[{"customer_id": "acme"}]
    ))
    assert process.status == "completed", process.failed_reason
    assert Subscription.objects.get().customer_id == "acme"


# --- who may view which subscription (subscriptions_for_user) -----------------------------


def guardian_answer(user) -> set:
    """What django-guardian's own query lets `user` view."""
    return set(selectors.guardian_visible_subscriptions(user).values_list("pk", flat=True))


def test_visible_subscriptions_are_exactly_guardians_answer_on_every_path(box_product):
    """subscriptions_for_user takes its own query when only the user's grants count; each
    kind of grant, alone and together, lists exactly what guardian's query lists."""
    from django.contrib.auth.models import Group
    from guardian.shortcuts import assign_perm

    from tests.factories import user_with_role

    rows = [
        Subscription.objects.create(product=box_product, description=f"s{n}", customer_id="c")
        for n in range(6)
    ]
    user = user_with_role(None)
    team = Group.objects.create(name="team")

    def listed() -> set:
        user_fresh = type(user).objects.get(pk=user.pk)  # no cached permissions
        visible = set(selectors.subscriptions_for_user(user_fresh).values_list("pk", flat=True))
        assert visible == guardian_answer(user_fresh)
        return visible

    assert listed() == set()
    assign_perm("subscriptions.change_subscription", user, rows[0])  # not a view grant
    assert listed() == set()
    assign_perm("subscriptions.view_subscription", user, rows[1])
    assign_perm("subscriptions.view_subscription", user_with_role(None), rows[2])  # another's
    assert listed() == {rows[1].pk}
    assign_perm("subscriptions.view_subscription", team, rows[3])  # a group the user is not in
    assert listed() == {rows[1].pk}
    user.groups.add(team)
    assert listed() == {rows[1].pk, rows[3].pk}
    user.groups.remove(team)
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert listed() == {rows[1].pk}  # guardian lists object grants of inactive users too
    type(user).objects.filter(pk=user.pk).update(is_active=True)
    assign_perm("subscriptions.view_subscription", team)  # a global view through a group
    user.groups.add(team)
    assert listed() == {row.pk for row in rows}
    user.groups.remove(team)
    type(user).objects.filter(pk=user.pk).update(is_superuser=True)
    assert listed() == {row.pk for row in rows}
