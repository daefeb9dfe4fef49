"""The blueprint pages (DESIGN §9): templates, blueprints with their graph, wiring, plan and
Execute form, executions with their steps by level, live fragment and overrides. Per role and
per object; every form refuses wrong, missing, oversized and hostile input naming the field,
and changes nothing."""

from __future__ import annotations

import pytest
from django.urls import reverse
from guardian.shortcuts import assign_perm

from blueprints import selectors, services
from blueprints.forms import ExecutionForm
from blueprints.models import Execution, Template
from orchestrator.models import Process
from tests.blueprint_helpers import drain, make_blueprint, steps_of
from tests.factories import user_with_role

pytestmark = pytest.mark.django_db
PASSWORD_VALUE = "Tr0ub4dor-and-3-very-secret"


def html(response) -> str:
    return response.content.decode()


def ids() -> dict[str, int]:
    return dict(Template.objects.values_list("name", "pk"))


def var(template: str, name: str) -> str:
    return f"var-{ids()[template]}-{name}"


def prefilled(response) -> dict[str, object]:
    """What a browser posts back when the user changes nothing in the rendered form."""
    form = response.context["form"]
    data: dict[str, object] = {}
    for name, field in form.fields.items():
        value = form.initial.get(name)
        if value in (None, "", []):
            continue
        prepared = field.prepare_value(value)
        data[name] = prepared if isinstance(prepared, list) else str(prepared)
    return data


def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def execution(three_tier):
    return services.create_execution(blueprint=three_tier)


@pytest.fixture
def urls(three_tier, execution):
    template = Template.objects.get(name="net")
    return {
        "get": [
            reverse("template-list"), reverse("template-detail", args=[template.pk]),
            reverse("blueprint-list"), reverse("blueprint-detail", args=[three_tier.pk]),
            reverse("execution-list"), reverse("execution-detail", args=[execution.pk]),
            reverse("execution-fragment", args=[execution.pk]),
        ],
        "post": [
            reverse("blueprint-execute", args=[three_tier.pk]),
            reverse("execution-update", args=[execution.pk]),
            reverse("execution-teardown", args=[execution.pk]),
            reverse("execution-delete", args=[execution.pk]),
        ],
    }


# --- who may see what ----------------------------------------------------------------------


def test_anonymous_users_are_sent_to_the_login_and_change_nothing(client, urls, execution):
    for url in urls["get"] + urls["post"]:
        method = client.post if url in urls["post"] else client.get
        response = method(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    assert Execution.objects.count() == 1
    execution.refresh_from_db()
    assert execution.status == "pending"


def test_a_user_without_a_role_sees_no_blueprint_template_or_execution(client, nobody, urls):
    logged_in(client, nobody)
    for url in urls["get"]:
        response = client.get(url)
        if "/executions/" in url and url != reverse("execution-list"):
            assert response.status_code == 404, url
        elif url.rstrip("/").split("/")[-1].isdigit():
            assert response.status_code == 404, url
        else:
            assert response.status_code == 200, url
            assert "net" not in html(response) and "three-tier" not in html(response), url
    for url in urls["post"]:
        assert client.post(url).status_code == 404, url


def test_a_viewer_sees_the_graph_wiring_and_plan_but_no_form_or_button(client, viewer, urls,
                                                                       three_tier):
    logged_in(client, viewer)
    for url in urls["get"]:
        assert client.get(url).status_code == 200, url
    page = html(client.get(reverse("blueprint-detail", args=[three_tier.pk])))
    assert "<svg" in page and "Level 0" in page and "Level 1" in page
    assert "res_id → upstream_id" in page  # an arrow's label
    assert page.count('class="graph-node') == 3
    assert "wired</span> <span class=\"muted\">from</span> <code>net.res_id</code>" in page
    assert "blueprint default" in page and "template default" in page
    assert "<form method=\"post\" action=\"/blueprints/" not in page
    assert "Execute" not in page.split("Plan</h2>")[1].split("Recent executions")[0]
    assert "executing it needs the operator role" in page
    detail = html(client.get(urls["get"][5]))
    for button in ("Tear down", "Delete", "Save overrides", ">Execute<"):
        assert button not in detail


def test_a_viewer_is_refused_every_action_and_nothing_changes(client, viewer, urls, execution,
                                                             three_tier):
    logged_in(client, viewer)
    for url in urls["post"]:
        assert client.post(url, {"then": "execute"}).status_code == 403, url
    assert Execution.objects.count() == 1
    execution.refresh_from_db()
    assert execution.status == "pending" and not execution.teardown_status


def test_template_pages_show_the_recipe_and_the_blueprints_using_it(client, viewer, three_tier):
    logged_in(client, viewer)
    listing = html(client.get(reverse("template-list")))
    assert "create_res" in listing and "res_id" in listing
    detail = html(client.get(reverse("template-detail", args=[ids()["app"]])))
    assert "upstream_id" in detail and "subnets" in detail and "three-tier" in detail
    assert "given per execution" in detail  # the secret variable has no stored default
    assert client.get(reverse("template-detail", args=[999999])).status_code == 404


def test_the_blueprint_list_shows_enabled_and_disabled(client, viewer, three_tier, res_product):
    make_blueprint("off", ["net"], enabled=False)
    logged_in(client, viewer)
    page = html(client.get(reverse("blueprint-list")))
    assert "three-tier" in page and "badge-enabled" in page and "badge-disabled" in page


def test_a_grant_on_one_blueprint_shows_only_it_and_lets_its_holder_execute(client, nobody,
                                                                           three_tier,
                                                                           res_product):
    other = make_blueprint("other", ["net"], defaults={"net": {"name": "x"}})
    assign_perm("blueprints.view_blueprint", nobody, three_tier)
    assign_perm("blueprints.execute_blueprint", nobody, three_tier)
    logged_in(client, nobody)
    assert "other" not in html(client.get(reverse("blueprint-list")))
    assert client.get(reverse("blueprint-detail", args=[other.pk])).status_code == 404
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    assert page.context["form"] is not None
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {**prefilled(page), "then": "review"})
    assert response.status_code == 302
    assert Execution.objects.get(blueprint=three_tier).created_by == nobody


# --- the Execute form ----------------------------------------------------------------------


def test_the_execute_form_is_prefilled_with_the_resolved_values(client, operator, three_tier):
    logged_in(client, operator)
    response = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    form = response.context["form"]
    assert form.initial[var("net", "name")] == "net-1"
    assert form.initial[var("app", "customer_id")] == "platform"
    assert var("app", "upstream_id") not in form.initial  # wired: the upstream's output
    page = html(response)
    assert 'type="password"' in page and 'name="' + var("db", "password") + '"' in page
    assert "Empty: the output of net.res_id, once it is done." in page


def test_an_operator_executes_with_an_override_and_only_changes_are_overrides(client, operator,
                                                                            three_tier):
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    data = {**prefilled(page), var("app", "size"): "7", var("db", "password"): PASSWORD_VALUE,
            "then": "execute"}
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]), data)
    execution = Execution.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("execution-detail", args=[execution.pk])
    assert execution.status == "in_progress" and execution.run is not None
    assert execution.created_by == operator
    assert execution.variable_overrides == {str(ids()["app"]): {"size": 7}}
    assert PASSWORD_VALUE not in execution.secret_overrides  # encrypted
    app = steps_of(execution)["app"]
    assert app.resolved_variables["size"] == {"value": 7, "source": "override"}
    detail = client.get(response["Location"], follow=True)
    text = html(detail)
    assert "Executing" in text and PASSWORD_VALUE not in text
    assert text.count("override</span>") >= 2  # size, and the secret password
    drain()
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    assert steps_of(execution)["db"].outputs["received_password_length"] == len(PASSWORD_VALUE)


def test_create_without_executing_leaves_a_pending_execution(client, operator, three_tier):
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {**prefilled(page), "then": "review"})
    execution = Execution.objects.get()
    assert response.status_code == 302 and execution.status == "pending"
    assert execution.variable_overrides == {} and not Process.objects.exists()


@pytest.mark.parametrize(("field", "value", "message"), [
    (("app", "size"), "seven", "Enter a whole number."),
    (("app", "size"), "-1", "greater than or equal to 0"),
    (("app", "items"), "[not json", "Enter a valid JSON."),
    (("app", "items"), '{"an": "object"}', "expects array, got object"),
    (("net", "name"), "n" * 51, "at most 50 characters"),
    (("net", "name"), "<script>alert(1)</script>" * 3, "at most 50 characters"),
    (("db", "fail"), "perhaps", None),  # not a choice: read as not given, so no override
    (("app", "delay"), "1e999", "Enter a number."),
])
def test_bad_variable_values_are_refused_naming_the_field(client, operator, three_tier, field,
                                                          value, message):
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    name = var(*field)
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {**prefilled(page), name: value, "then": "execute"})
    if message is None:
        assert response.status_code == 302
        assert Execution.objects.get().variable_overrides == {}
        return
    assert response.status_code == 400
    assert not Execution.objects.exists() and not Process.objects.exists()
    form = response.context["form"]
    assert any(message in error for error in form.errors[name]), form.errors
    text = html(response)
    assert "Nothing was created." in text and f"{field[1]}: " in text
    assert f'<a href="#id_{name}">{field[0]} · {field[1]}</a>' in text
    assert "<script>alert(1)</script>" not in text


@pytest.mark.parametrize(("field", "value"), [
    ("integrations", "999999"),
    ("secrets", "not-an-id"),
    ("storage", "999999"),
    ("version", "v9"),
    ("parents", "8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11"),
    ("parents", "'; DROP TABLE blueprints_execution; --"),
])
def test_unknown_choices_are_refused_naming_the_field(client, operator, three_tier, field, value):
    services.save_template(template=Template.objects.get(name="app"),
                           data={"source_code_versions": ["v1.0"]})
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    name = f"{field}-{ids()['app']}" if field in ("version", "parents") else field
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {**prefilled(page), name: value, "then": "execute"})
    assert response.status_code == 400 and not Execution.objects.exists()
    assert name in response.context["form"].errors


def test_a_required_variable_without_a_value_is_named(client, operator, res_product):
    from tests.blueprint_helpers import make_template

    make_template("lone")
    blueprint = make_blueprint("bare", ["lone"])
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[blueprint.pk]))
    assert "required: give one" in html(page)
    response = client.post(reverse("blueprint-execute", args=[blueprint.pk]),
                           {**prefilled(page), "then": "execute"})
    assert response.status_code == 400 and not Execution.objects.exists()
    assert "lone.name" in html(response) and "missing value" in html(response)


def test_oversized_and_nul_values_are_refused_before_the_view(client, operator, three_tier):
    logged_in(client, operator)
    url = reverse("blueprint-execute", args=[three_tier.pk])
    for value in ("x" * 5000, "a\x00b"):
        response = client.post(url, {var("net", "name"): value, "then": "execute"})
        assert response.status_code == 400
        assert var("net", "name") in html(response)
    assert not Execution.objects.exists()


def test_choices_offer_and_accept_only_what_the_user_may_view(client, nobody, three_tier):
    secret = services.save_secret(data={"name": "hidden_token", "value": "s3cr3t-value"})
    assign_perm("blueprints.view_blueprint", nobody, three_tier)
    assign_perm("blueprints.execute_blueprint", nobody, three_tier)
    logged_in(client, nobody)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    assert "hidden_token" not in html(page)
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {**prefilled(page), "secrets": str(secret.pk), "then": "execute"})
    assert response.status_code == 400 and not Execution.objects.exists()
    assert "secrets" in response.context["form"].errors
    assert "hidden_token" not in html(response)
    operator = user_with_role("operator")
    offered = ExecutionForm(user=operator, parts=selectors.blueprint_parts(three_tier))
    assert list(offered.fields["secrets"].queryset) == [secret]


def test_a_disabled_blueprint_says_why_and_cannot_be_executed(client, operator, three_tier):
    services.set_blueprint_enabled(blueprint=three_tier, enabled=False)
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    assert page.context["form"] is None
    assert "Disabled:" in html(page) and "cannot be executed" in html(page)
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]),
                           {"then": "execute"})
    assert response.status_code == 409 and not Execution.objects.exists()
    assert "disabled" in html(response)


def test_a_get_on_an_action_is_refused(client, operator, three_tier, execution):
    logged_in(client, operator)
    assert client.get(reverse("blueprint-execute", args=[three_tier.pk])).status_code == 405
    assert client.get(reverse("execution-update", args=[execution.pk])).status_code == 405


# --- executions ----------------------------------------------------------------------------


def test_the_execution_page_shows_steps_by_level_and_the_live_fragment_stops_when_done(
    client, operator, three_tier
):
    execution = services.create_execution(blueprint=three_tier, user=operator)
    services.execute_execution(execution=execution, user=operator)
    logged_in(client, operator)
    fragment = html(client.get(reverse("execution-fragment", args=[execution.pk])))
    assert "data-live-root" in fragment and "data-live-stop" not in fragment
    assert "updating live" in fragment
    drain()
    page = html(client.get(reverse("execution-detail", args=[execution.pk])))
    assert "data-live-stop" in page and "3 of 3 steps done" in page
    steps = steps_of(execution)
    for step in steps.values():
        assert reverse("process-detail", args=[step.process_id]) in page
        assert reverse("subscription-detail", args=[step.resource_id]) in page
    assert "&quot;res-net-1&quot;" in page  # a wired value, resolved at run time
    assert "node-done" in page  # the graph's nodes show the steps' status
    assert page.index("Level 0") < page.index(f'id="step-{steps["app"].pk}"')


def test_a_child_process_names_its_execution_only_to_who_may_see_it(client, operator, nobody,
                                                                   three_tier):
    """A step's process and the execution's run show their execution among what they touched,
    to a user who may view the execution, and not to one who may view only the process."""
    execution = services.create_execution(blueprint=three_tier, user=operator)
    services.execute_execution(execution=execution, user=operator)
    drain()
    execution.refresh_from_db()
    child = steps_of(execution)["app"].process
    for process in (child, execution.run):
        assign_perm("orchestrator.view_process", nobody, process)
        for user, shown in ((operator, [str(execution.pk)]), (nobody, [])):
            logged_in(client, user)
            body = client.get(f"/api/processes/{process.pk}/").json()
            assert [item["id"] for item in body["touched"]
                    if item["kind"].startswith("execution")] == shown, user
    logged_in(client, operator)
    page = html(client.get(reverse("process-detail", args=[child.pk])))
    assert reverse("execution-detail", args=[execution.pk]) in page and "three-tier · app" in page


def test_an_operator_changes_overrides_while_pending_and_nothing_else(client, operator,
                                                                     execution):
    logged_in(client, operator)
    url = reverse("execution-detail", args=[execution.pk])
    page = client.get(url)
    assert page.context["form"] is not None and "Save overrides" in html(page)
    data = {**prefilled(page), var("app", "size"): "9", var("db", "password"): PASSWORD_VALUE,
            "then": "save"}
    response = client.post(reverse("execution-update", args=[execution.pk]), data)
    assert response.status_code == 302
    execution.refresh_from_db()
    assert execution.status == "pending"
    assert execution.variable_overrides == {str(ids()["app"]): {"size": 9}}
    assert steps_of(execution)["app"].resolved_variables["size"]["source"] == "override"
    again = client.get(url)
    assert PASSWORD_VALUE not in html(again)
    assert again.context["form"].initial[var("app", "size")] == 9
    # The secret field is empty when shown; sent empty, the secret override stays.
    client.post(reverse("execution-update", args=[execution.pk]),
                {**prefilled(again), "then": "save"})
    secret = services.execution_data(Execution.objects.get())["variable_overrides"]
    assert secret[str(ids()["db"])]["password"] == PASSWORD_VALUE
    # Emptying a value removes its override: the default applies again.
    client.post(reverse("execution-update", args=[execution.pk]),
                {**prefilled(again), var("app", "size"): "", "then": "save"})
    execution.refresh_from_db()
    assert str(ids()["app"]) not in execution.variable_overrides


def test_bad_overrides_on_the_execution_page_are_refused_and_change_nothing(client, operator,
                                                                           execution):
    logged_in(client, operator)
    page = client.get(reverse("execution-detail", args=[execution.pk]))
    for name, value in ((var("app", "size"), "big"), (var("app", "items"), "{"),
                        ("storage", "0"), (var("app", "size"), "1.5")):
        response = client.post(reverse("execution-update", args=[execution.pk]),
                               {**prefilled(page), name: value, "then": "execute"})
        assert response.status_code == 400, name
        assert name in response.context["form"].errors
        assert "Nothing was changed." in html(response)
    execution.refresh_from_db()
    assert execution.variable_overrides == {} and not Process.objects.exists()


def test_a_failed_step_is_fixed_on_the_page_and_executing_again_runs_only_it(client, operator,
                                                                            three_tier):
    execution = services.create_execution(
        blueprint=three_tier, user=operator,
        data={"variable_overrides": {"db": {"fail": True}}},
    )
    services.execute_execution(execution=execution, user=operator)
    drain()
    execution.refresh_from_db()
    assert execution.status == "error"
    logged_in(client, operator)
    page = client.get(reverse("execution-detail", args=[execution.pk]))
    text = html(page)
    assert "failed on purpose" in text and "Execute again" in text
    form = page.context["form"]
    assert var("db", "fail") in form.fields and var("net", "name") not in form.fields  # done
    response = client.post(reverse("execution-update", args=[execution.pk]),
                           {**prefilled(page), var("db", "fail"): "false", "then": "execute"})
    assert response.status_code == 302
    done = {name: step.process_id for name, step in steps_of(execution).items()
            if step.status == "done"}
    drain()
    execution.refresh_from_db()
    assert execution.status == "done", execution.error_message
    steps = steps_of(execution)
    assert {name: steps[name].process_id for name in done} == done  # not run again


def test_changing_a_running_execution_is_refused_saying_why(client, operator, execution):
    logged_in(client, operator)
    page = client.get(reverse("execution-detail", args=[execution.pk]))
    data = prefilled(page)
    services.execute_execution(execution=execution, user=operator)
    response = client.post(reverse("execution-update", args=[execution.pk]),
                           {**data, var("app", "size"): "3"}, follow=True)
    assert "only while it is pending or in error" in html(response)
    execution.refresh_from_db()
    assert execution.variable_overrides == {}
    assert response.context["form"] is None  # no form while it runs


def test_admins_tear_down_and_delete_operators_see_neither(client, operator, admin_user,
                                                          three_tier):
    execution = services.create_execution(blueprint=three_tier)
    services.execute_execution(execution=execution)
    drain()
    logged_in(client, operator)
    page = html(client.get(reverse("execution-detail", args=[execution.pk])))
    assert "Tear down" not in page and ">Delete<" not in page
    assert client.post(reverse("execution-teardown", args=[execution.pk])).status_code == 403
    logged_in(client, admin_user)
    page = html(client.get(reverse("execution-detail", args=[execution.pk])))
    assert "Tear down" in page and ">Delete<" in page
    response = client.post(reverse("execution-teardown", args=[execution.pk]), follow=True)
    assert "Tearing down" in html(response)
    execution.refresh_from_db()
    assert execution.teardown_status == "in_progress"
    refused = client.post(reverse("execution-delete", args=[execution.pk]), follow=True)
    assert "running" in html(refused) and Execution.objects.exists()
    drain()
    response = client.post(reverse("execution-delete", args=[execution.pk]))
    assert response.status_code == 302 and not Execution.objects.exists()
    assert response["Location"] == reverse("execution-list") + f"?blueprint={three_tier.pk}"


def test_the_execution_list_filters_by_blueprint_and_status(client, viewer, three_tier,
                                                           res_product):
    other = make_blueprint("other", ["net"], defaults={"net": {"name": "x"}})
    first = services.create_execution(blueprint=three_tier)
    second = services.create_execution(blueprint=other)
    services.execute_execution(execution=second)
    logged_in(client, viewer)
    listing = client.get(reverse("execution-list"))
    assert listing.status_code == 200
    assert set(listing.context["executions"]) == {first, second}
    by_blueprint = client.get(reverse("execution-list"), {"blueprint": three_tier.pk})
    assert list(by_blueprint.context["executions"]) == [first]
    by_status = client.get(reverse("execution-list"), {"status": "in_progress"})
    assert list(by_status.context["executions"]) == [second]
    assert "0 of 1" in html(by_status)
    for bad in ({"status": "bogus"}, {"blueprint": "abc"}, {"blueprint": "999999"}):
        response = client.get(reverse("execution-list"), bad)
        assert response.status_code == 400, bad
        assert list(response.context["executions"]) == []
        assert "a filter value could not be read" in html(response)


def test_the_navigation_reaches_every_blueprint_page(client, viewer, three_tier):
    logged_in(client, viewer)
    page = html(client.get(reverse("blueprint-list")))
    for name in ("blueprint-list", "template-list", "execution-list"):
        assert f'href="{reverse(name)}"' in page


def test_a_boolean_variable_shows_its_default_selected(client, operator, three_tier):
    logged_in(client, operator)
    page = html(client.get(reverse("blueprint-detail", args=[three_tier.pk])))
    select = page.split(f'name="{var("db", "fail")}"')[1].split("</select>")[0]
    assert '<option value="false" selected>false</option>' in select


def test_chosen_parents_integrations_secrets_and_storage_reach_the_execution(client, operator,
                                                                          three_tier):
    first = services.create_execution(blueprint=three_tier)
    services.execute_execution(execution=first)
    drain()
    parent = steps_of(first)["net"].resource
    secret = services.save_secret(data={"name": "api_token", "value": "tok-123456"})
    integration = services.save_integration(data={"name": "aws-prod", "kind": "aws"})
    storage = services.save_storage(data={"name": "state", "kind": "s3"})
    logged_in(client, operator)
    page = client.get(reverse("blueprint-detail", args=[three_tier.pk]))
    offered = page.context["form"].fields[f"parents-{ids()['app']}"].queryset
    assert parent in offered
    response = client.post(reverse("blueprint-execute", args=[three_tier.pk]), {
        **prefilled(page), f"parents-{ids()['app']}": str(parent.pk),
        "secrets": str(secret.pk), "integrations": str(integration.pk),
        "storage": str(storage.pk), "then": "review",
    })
    assert response.status_code == 302
    execution = Execution.objects.exclude(pk=first.pk).get()
    assert execution.parent_overrides == {str(ids()["app"]): [str(parent.pk)]}
    assert list(execution.secrets.all()) == [secret]
    assert list(execution.integrations.all()) == [integration]
    assert execution.storage == storage
    edit = client.get(reverse("execution-detail", args=[execution.pk])).context["form"]
    assert edit.initial["storage"] == storage.pk and edit.initial["secrets"] == [secret.pk]
    assert edit.initial[f"parents-{ids()['app']}"] == [str(parent.pk)]
