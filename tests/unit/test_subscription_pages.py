"""The product and subscription pages, the start page on a subscription or product, and the
subscription admin: permissions, filters, workflows with reasons, set in sync, no 500s."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from guardian.shortcuts import assign_perm

from orchestrator import services
from orchestrator.models import Process, Workflow
from subscriptions.models import Subscription
from tests.factories import user_with_role
from tests.helpers import run, start_on

pytestmark = pytest.mark.django_db

NO_SUCH_ID = "8f5b3a0e-3f39-4a5e-9a55-0a3c2b1f1a11"


def html(response) -> str:
    return response.content.decode()


def notes(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def detail_url(subscription: Subscription) -> str:
    return reverse("subscription-detail", args=[subscription.pk])


def start_url(workflow: str, **query) -> str:
    url = reverse("workflow-start", args=[workflow])
    return url + "?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else url


# --- login and visibility ---------------------------------------------------------------------


def test_pages_redirect_anonymous_users_to_the_login(client, create_box):
    box = create_box()
    Subscription.objects.filter(pk=box.pk).update(insync=False)
    for url in (
        reverse("subscription-list"),
        reverse("product-list"),
        detail_url(box),
        start_url("modify_box", subscription=box.pk),
    ):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/login/"), url
    response = client.post(reverse("subscription-set-in-sync", args=[box.pk]))
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    box.refresh_from_db()
    assert box.insync is False


def test_per_object_grant_shows_exactly_that_subscription(client, create_box, nobody):
    seen, unseen = create_box("seen"), create_box("unseen")
    client.force_login(nobody)
    assert "No subscription matches" in html(client.get(reverse("subscription-list")))
    assert client.get(detail_url(seen)).status_code == 404
    assign_perm("subscriptions.view_subscription", nobody, seen)
    page = html(client.get(reverse("subscription-list")))
    assert "Box seen" in page and "Box unseen" not in page
    assert client.get(detail_url(seen)).status_code == 200
    assert client.get(detail_url(unseen)).status_code == 404
    assert client.get(f"/subscriptions/{NO_SUCH_ID}/").status_code == 404
    assert client.get("/subscriptions/not-a-uuid/").status_code == 404
    assert "You may not see any product" in html(client.get(reverse("product-list")))


# --- products --------------------------------------------------------------------------------


def test_products_page_lists_workflows_and_start_buttons_for_create(client, box_product,
                                                                     operator, viewer):
    client.force_login(operator)
    page = html(client.get(reverse("product-list")))
    for name in ("create_box", "modify_box", "terminate_box", "validate_box", "modify_note"):
        assert name in page
    assert f'href="/workflows/create_box/start/?product={box_product.pk}"' in page
    assert "/workflows/modify_box/start/?product=" not in page
    client.force_login(viewer)
    assert "/workflows/create_box/start/" not in html(client.get(reverse("product-list")))


# --- list --------------------------------------------------------------------------------------


def test_subscription_list_filters_search_and_pages(client, create_box, box_product, viewer):
    box = create_box("alpha")
    for n in range(30):
        Subscription.objects.create(
            product=box_product, description=f"bulk {n}", customer_id="BULK", status="active",
            insync=n % 2 == 0,
        )
    odd = Subscription.objects.create(
        product=box_product, description="Odd one", customer_id="ACME-7", status="disabled"
    )
    client.force_login(viewer)
    url = reverse("subscription-list")
    first = client.get(url)
    assert first.status_code == 200 and first.context["page"].paginator.count == 32
    assert "Page 1 of 2" in html(first) and "32 found" in html(first)
    assert len(client.get(url + "?page=2").context["subscriptions"]) == 7
    assert list(client.get(url + "?search=acme").context["subscriptions"]) == [odd]
    assert list(client.get(url + "?search=ALPHA").context["subscriptions"]) == [box]
    assert list(client.get(url + "?status=disabled").context["subscriptions"]) == [odd]
    assert client.get(url + "?insync=false").context["page"].paginator.count == 16
    assert client.get(url + "?insync=true&status=active").context["page"].paginator.count == 16
    assert client.get(url + f"?product={box_product.pk}").context["page"].paginator.count == 32
    assert detail_url(box) in html(client.get(url + "?search=alpha"))


def test_a_list_past_the_count_cap_says_more_than_and_still_pages(
    client, box_product, viewer, monkeypatch
):
    """Beyond COUNT_CAP rows the page says "more than N" (never a false exact number) and
    offers Next without a last page; a page past the cap counts on to its own end."""
    monkeypatch.setattr("orchestrator.pagination.COUNT_CAP", 5)
    monkeypatch.setattr("subscriptions.views.PAGE_SIZE", 3)
    rows = [
        Subscription.objects.create(product=box_product, description=f"s{n}", customer_id="c")
        for n in range(9)
    ]
    client.force_login(viewer)
    url = reverse("subscription-list")
    first = html(client.get(url))
    assert ">more than 5 found<" in first and "Page 1</span>" in first
    assert "page=2" in first and "Last »" not in first
    last = client.get(url + "?page=3")  # pages 1-3 end at row 9: counted exactly
    assert ">9 found<" in html(last) and "Page 3 of 3" in html(last)
    assert len(last.context["subscriptions"]) == 3
    assert ">1 found<" in html(client.get(url + "?search=s1"))  # small sets: exact
    seen = {s.pk for page in (1, 2, 3)
            for s in client.get(url + f"?page={page}").context["subscriptions"]}
    assert seen == {row.pk for row in rows}


def test_list_times_are_written_as_the_date_filters_write_them(settings):
    """time_tag writes what `date:'c'` and `date:"Y-m-d H:i"` wrote, in the current zone."""
    import datetime

    from django.template import engines
    from django.utils import timezone

    moment = datetime.datetime(2026, 3, 29, 0, 30, 15, 123456, tzinfo=datetime.UTC)
    filters = engines["django"].from_string(
        """<time datetime="{{ m|date:'c' }}">{{ m|date:"Y-m-d H:i" }}</time>"""
    )
    tag = engines["django"].from_string("{% load orchestrator_tags %}{% time_tag m %}")
    for zone in ("UTC", "Europe/Amsterdam", "America/St_Johns"):
        with timezone.override(zone):
            assert tag.render({"m": moment}) == filters.render({"m": moment}), zone
    assert tag.render({"m": None}) == ""


def test_list_rows_are_written_as_the_template_wrote_them(box_product):
    """subscription_rows writes what the row template wrote (its tags and filters, escaping
    included) for hostile text, both in-sync states and every status, in another time zone."""
    from django.template import engines
    from django.utils import timezone

    template_row = engines["django"].from_string(
        "{% load orchestrator_tags %}{% for s in rows %}"
        '<tr><td><a href="{% url \'subscription-detail\' s.pk %}">{{ s.description }}</a> '
        '<span class="muted mono">{{ s.pk|stringformat:"s"|slice:":8" }}</span></td>'
        '<td>{{ s.product.name }}</td><td class="mono">{{ s.customer_id }}</td>'
        "<td>{% status_badge s.status %}</td><td>{% if s.insync %}"
        '<span class="badge badge-insync">in sync</span>{% else %}'
        '<span class="badge badge-outofsync">out of sync</span>{% endif %}</td>'
        "<td>{{ s.version }}</td><td>{% time_tag s.created_at %}</td></tr>"
        "{% if not forloop.last %}\n{% endif %}{% endfor %}"
    )
    tag = engines["django"].from_string(
        "{% load subscription_tags %}{% subscription_rows rows %}"
    )
    hostile = "<script>alert('x')</script> & \"quoted\""
    for status in Subscription._meta.get_field("status").choices:
        Subscription.objects.create(
            product=box_product, description=hostile, customer_id=f"<b>{status[0]}</b>",
            status=status[0], insync=len(status[0]) % 2 == 0,
        )
    rows = list(Subscription.objects.select_related("product"))
    assert {row.insync for row in rows} == {True, False}
    with timezone.override("America/St_Johns"):
        written = tag.render({"rows": rows})
        assert written == template_row.render({"rows": rows})
    assert "<script>" not in written and "&lt;script&gt;" in written


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("insync=maybe", 400),  # malformed filters: the page shows their errors, lists nothing
        ("status=bogus", 400),
        ("product=abc", 400),
        ("product=" + "9" * 40, 400),
        ("search=" + "a" * 10000, 400),  # parameters no view can read
        ("search=%00", 400),
        ("page=abc", 200),  # a page number out of range shows the first or last page
        ("page=-1", 200),
        ("page=99999999999999999999", 200),
    ],
)
def test_hostile_list_queries_never_fail(client, create_box, viewer, query, status):
    create_box()
    client.force_login(viewer)
    response = client.get(reverse("subscription-list") + "?" + query)
    assert response.status_code == status, query
    if status == 400:  # a filter's error (nothing listed) or the parameter's (bad request)
        context = response.context
        assert ("page" in context and not context["page"].object_list) or "problems" in context


def test_list_queries_do_not_grow_with_the_rows(client, box_product, viewer):
    client.force_login(viewer)
    url = reverse("subscription-list")
    for n in range(5):
        Subscription.objects.create(product=box_product, description=f"s{n}", customer_id="c")
    client.get(url)  # warm up the content type and permission caches
    with CaptureQueriesContext(connection) as few:
        client.get(url)
    for n in range(5, 25):
        Subscription.objects.create(product=box_product, description=f"s{n}", customer_id="c")
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(url).context["subscriptions"]) == 25
    assert len(many) == len(few)
    assert not any('"instance_values"' in query["sql"] for query in many.captured_queries)


# --- detail ----------------------------------------------------------------------------------


def test_detail_shows_values_relations_history_and_workflow_buttons(client, create_box,
                                                                     operator, viewer):
    base = create_box("base")
    user = create_box("user", depends_on=str(base.pk))
    client.force_login(operator)
    page = html(client.get(detail_url(base)))
    assert "Box base" in page and "cust-1" in page
    assert "size" in page and "base" in page  # instance values
    assert detail_url(user) in page  # in use by, linked
    created_by = base.processes.get()
    assert reverse("process-detail", args=[created_by.pk]) in page  # history
    for name in ("modify_box", "validate_box", "modify_note"):
        assert f'href="/workflows/{name}/start/?subscription={base.pk}"' in page, name
    # terminate is blocked while a live subscription uses it: the reason, no button
    assert f"/workflows/terminate_box/start/?subscription={base.pk}" not in page
    assert "in use by" in page and "Box user" in page
    assert "Out of sync" not in page and "Set in sync" not in page
    assert detail_url(base) in html(client.get(detail_url(user)))  # depends on, linked

    client.force_login(viewer)  # may view, may not start
    page = html(client.get(detail_url(base)))
    assert "/workflows/modify_box/start/" not in page and "usable" in page


def test_detail_of_a_terminated_subscription_gives_reasons(client, create_box, operator):
    box = create_box()
    run(start_on(box, "terminate_box"))
    client.force_login(operator)
    page = html(client.get(detail_url(box)))
    assert "/workflows/modify_box/start/" not in page
    assert "does not run on terminated subscriptions" in page


def test_out_of_sync_banner_links_the_holding_process_and_set_in_sync(client, create_box,
                                                                       operator, synced):
    admin = user_with_role("admin")
    box = create_box()
    modify = run(start_on(box, "modify_box", {"size": 7, "fail": True}))
    client.force_login(operator)
    page = html(client.get(detail_url(box)))
    assert "Out of sync" in page
    assert reverse("process-detail", args=[modify.pk]) in page
    assert "Set in sync" not in page  # operators may not
    refused = client.post(reverse("subscription-set-in-sync", args=[box.pk]))
    assert refused.status_code == 403

    client.force_login(admin)
    page = html(client.get(detail_url(box)))
    assert "Set in sync" in page
    assert f"{modify.pk} (modify_box, failed)" in page  # the reason beside modify_note
    response = client.post(reverse("subscription-set-in-sync", args=[box.pk]))
    assert response.status_code == 302
    assert any(str(modify.pk) in note and "Cannot set in sync" in note for note in notes(response))
    box.refresh_from_db()
    assert box.insync is False

    services.abort_process(process=modify, user=admin)
    page = html(client.get(detail_url(box)))
    assert "No open process holds it" in page
    response = client.post(reverse("subscription-set-in-sync", args=[box.pk]), follow=True)
    assert "in sync again" in html(response)
    box.refresh_from_db()
    assert box.insync is True
    assert client.get(reverse("subscription-set-in-sync", args=[box.pk])).status_code == 405
    missing = client.post(reverse("subscription-set-in-sync", args=[NO_SUCH_ID]))
    assert missing.status_code == 404


# --- the start page on a subscription or a product -----------------------------------------------


def test_start_page_carries_the_subscription_into_the_process(client, create_box, operator):
    box = create_box()
    client.force_login(operator)
    url = start_url("modify_box", subscription=box.pk)
    page = html(client.get(url))
    assert "Box b1" in page and 'name="__subscription"' in page and str(box.pk) in page
    response = client.post(url, {"__subscription": str(box.pk), "size": "9"})
    assert response.status_code == 302
    process = Process.objects.get(workflow__name="modify_box")
    assert response["Location"] == reverse("process-detail", args=[process.pk])
    assert process.state["subscription_id"] == str(box.pk)
    box.refresh_from_db()
    assert box.insync is False and list(process.subscriptions.all()) == [box]

    # The second start is refused with the reason, naming the first process; never a 500.
    page = html(client.get(url))
    assert str(process.pk) in page  # said before the form is filled
    again = client.post(url, {"__subscription": str(box.pk), "size": "4"})
    assert again.status_code == 400 and str(process.pk) in html(again)
    assert Process.objects.filter(workflow__name="modify_box").count() == 1


def test_start_page_refusals_never_500(client, create_box, operator):
    box = create_box()
    client.force_login(operator)
    assert client.get(start_url("modify_box", subscription=NO_SUCH_ID)).status_code == 404
    assert client.get(start_url("modify_box", subscription="zzz")).status_code == 404
    assert client.post(
        start_url("modify_box"), {"__subscription": "zzz", "size": "1"}
    ).status_code == 404
    assert client.get(start_url("create_box", product="99999")).status_code == 404
    assert client.get(start_url("create_box", product="%00")).status_code == 400
    assert client.get(start_url("create_box", product="x" * 5000)).status_code == 400
    no_target = html(client.get(start_url("modify_box")))
    assert 'name="subscription"' in no_target and f'value="{box.pk}"' in no_target
    assert "errorbox" not in no_target
    posted = client.post(start_url("modify_box"), {"size": "1"})
    assert posted.status_code == 400 and "give its id" in html(posted)
    invalid = client.post(start_url("modify_box"), {"__subscription": str(box.pk), "size": "0"})
    assert invalid.status_code == 400
    box.refresh_from_db()
    assert box.insync is True and not Process.objects.filter(workflow__name="modify_box").exists()


def test_a_start_without_its_product_offers_the_products_the_user_may_see(
    client, box_product, create_box
):
    """Start on a create workflow from the workflow list: the page asks for the product
    first, offering only products the user may view that the workflow belongs to."""
    from subscriptions.models import Product

    hidden = Product.objects.create(name="Hidden box", product_type=box_product.product_type)
    unlinked = Product.objects.create(name="Unlinked box", product_type=box_product.product_type)
    hidden.workflows.add(Workflow.objects.get(name="create_box"))
    user = user_with_role(None)
    assign_perm("orchestrator.view_workflow", user, Workflow.objects.get(name="create_box"))
    assign_perm("orchestrator.start_workflow", user, Workflow.objects.get(name="create_box"))
    client.force_login(user)
    page = html(client.get(start_url("create_box")))
    assert 'name="product"' in page and "errorbox" not in page
    assert "No product you may see offers create_box" in page and "Continue" in page
    assign_perm("subscriptions.view_product", user, box_product)
    assign_perm("subscriptions.view_product", user, unlinked)
    page = html(client.get(start_url("create_box")))
    assert f'<option value="{box_product.pk}">Box (Box)</option>' in page
    assert "Hidden box" not in page and "Unlinked box" not in page
    assert 'name="customer_id"' not in page  # the form comes once the product is chosen
    chosen = html(client.get(start_url("create_box", product=box_product.pk)))
    assert 'name="customer_id"' in chosen and 'name="__product"' in chosen


def test_start_page_fills_the_version_and_refuses_stale_data(client, create_box, operator):
    box = create_box()
    client.force_login(operator)
    url = start_url("modify_note", subscription=box.pk)
    page = html(client.get(url))
    assert f'name="version" value="{box.version}"' in page
    stale = client.post(url, {"__subscription": str(box.pk), "note": "x", "version": "1"})
    assert stale.status_code == 400
    assert (f"Stale data: given version 1 does not match the current version {box.version}"
            in html(stale))
    box.refresh_from_db()
    assert box.insync is True
    fresh = client.post(url, {"__subscription": str(box.pk), "note": "x",
                              "version": str(box.version)})
    assert fresh.status_code == 302


def test_start_page_with_a_product_creates_a_subscription(client, box_product, operator):
    client.force_login(operator)
    url = start_url("create_box", product=box_product.pk)
    page = html(client.get(url))
    assert 'name="__product"' in page and "Box" in page
    response = client.post(
        url, {"__product": str(box_product.pk), "customer_id": "c-2", "name": "p", "size": "3"}
    )
    assert response.status_code == 302
    process = run(Process.objects.get(workflow__name="create_box"))
    assert process.status == "completed"
    assert Subscription.objects.get(description="Box p").product == box_product

    other = type(box_product).objects.create(name="Other", product_type=box_product.product_type)
    url = start_url("create_box", product=other.pk)
    assert "is not a workflow of the product Other" in html(client.get(url))
    refused = client.post(
        url, {"__product": str(other.pk), "customer_id": "c-3", "name": "q", "size": "3"}
    )
    assert refused.status_code == 400 and "is not a workflow of the product Other" in html(refused)
    assert Process.objects.filter(workflow__name="create_box").count() == 1


# --- admin -------------------------------------------------------------------------------------


def staff(role: str):
    user = user_with_role(role)
    user.is_staff = True
    user.save()
    return user


CHANGELIST = "admin:subscriptions_subscription_changelist"


def test_admin_pages_render_with_filters_and_search(client, create_box, box_product, synced):
    admin = staff("admin")
    box = create_box()
    client.force_login(admin)
    for url in (
        reverse(CHANGELIST),
        reverse(CHANGELIST) + "?q=" + str(box.pk)[:8],
        reverse(CHANGELIST) + "?q=not-a-uuid&status__exact=bogus&insync__exact=maybe",
        reverse(CHANGELIST) + f"?product__id__exact={box_product.pk}&insync__exact=1",
        reverse("admin:subscriptions_subscription_change", args=[box.pk]),
        reverse("admin:subscriptions_product_changelist"),
        reverse("admin:subscriptions_product_change", args=[box_product.pk]),
        reverse("admin:subscriptions_producttype_changelist"),
        reverse("admin:subscriptions_productblock_changelist"),
    ):
        response = client.get(url)
        assert response.status_code in (200, 302), (url, response.status_code)
    search = client.get(reverse(CHANGELIST) + "?q=" + str(box.pk)[:8])
    assert list(search.context["cl"].result_list) == [box]
    assert client.get(reverse("admin:subscriptions_subscription_add")).status_code == 403
    assert client.get(
        reverse("admin:subscriptions_subscription_delete", args=[box.pk])
    ).status_code == 403
    protected = client.post(
        reverse("admin:subscriptions_product_delete", args=[box_product.pk]), {"post": "yes"}
    )
    assert protected.status_code == 200 and "Cannot delete product" in html(protected)
    assert type(box_product).objects.filter(pk=box_product.pk).exists()
    page = html(client.get(reverse("admin:subscriptions_subscription_change", args=[box.pk])))
    assert 'name="version"' not in page and 'name="insync"' not in page


def admin_change_data(client, url: str) -> dict:
    """What the subscription's admin change form posts as it is shown."""
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    data["depends_on"] = []
    data["instance_values"] = '{"name": "b1", "size": 5}'
    for name in ("start_date", "end_date"):
        value = form[name].value()
        data[f"{name}_0"] = value.strftime("%Y-%m-%d") if value else ""
        data[f"{name}_1"] = value.strftime("%H:%M:%S") if value else ""
    return data


def test_admin_edit_bumps_the_version(client, create_box, synced):
    admin = staff("admin")
    box = create_box()
    client.force_login(admin)
    url = reverse("admin:subscriptions_subscription_change", args=[box.pk])
    data = admin_change_data(client, url)
    data["note"] = "fixed by hand"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    version = box.version
    box.refresh_from_db()
    assert box.note == "fixed by hand" and box.version == version + 1


def test_admin_moves_a_subscription_only_within_its_product_type(
    client, create_box, box_product, synced
):
    from subscriptions.models import Product, ProductType

    box = create_box()
    large = Product.objects.create(name="Box XL", product_type=box_product.product_type)
    crate = Product.objects.create(name="Crate", product_type=ProductType.objects.create(
        name="Crate"))
    client.force_login(staff("admin"))
    url = reverse("admin:subscriptions_subscription_change", args=[box.pk])
    data = {**admin_change_data(client, url), "product": crate.pk}
    refused = client.post(url, data)
    assert refused.status_code == 200
    assert "a subscription changes product only within its product type" in html(refused)
    box.refresh_from_db()
    assert box.product == box_product
    assert client.post(url, {**data, "product": large.pk}).status_code == 302
    box.refresh_from_db()
    assert box.product == large


def test_admin_set_in_sync_action_refuses_while_held(client, create_box, synced):
    admin, operator = staff("admin"), staff("operator")
    held, free = create_box("held"), create_box("free")
    modify = run(start_on(held, "modify_box", {"size": 7, "fail": True}))
    Subscription.objects.filter(pk=free.pk).update(insync=False)
    client.force_login(admin)
    response = client.post(
        reverse(CHANGELIST),
        {"action": "set_in_sync_selected", "_selected_action": [str(held.pk), str(free.pk)]},
        follow=True,
    )
    assert response.status_code == 200
    messages = notes(response) or [str(m) for m in response.context["messages"]]
    assert any("Box held" in m and str(modify.pk) in m for m in messages), messages
    assert any("Set 1 subscription(s) in sync" in m for m in messages), messages
    held.refresh_from_db()
    free.refresh_from_db()
    assert held.insync is False and free.insync is True

    client.force_login(operator)
    actions = client.get(reverse(CHANGELIST)).context["action_form"]
    names = {name for name, _ in actions.fields["action"].choices} if actions else set()
    assert "set_in_sync_selected" not in names
