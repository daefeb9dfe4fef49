"""Subscription lists under object permissions: 100,000 subscriptions, half of them visible.

    psql -h 127.0.0.1 -U postgres -c 'create database bench_subscriptions'
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench_subscriptions \\
        python bench/subscriptions_list.py

On the configured database (migrated first) it creates 20 products and 10,000, then
100,000 subscriptions (bulk inserts), and a user who is in no group and has no model
permission: what they may view comes only from django-guardian object permissions
(`view_subscription` rows of the direct foreign-key model `SubscriptionUserObjectPermission`)
on every other subscription.
Through the Django test client (force_login, in process, no network) it measures

  API   GET /api/subscriptions/?limit=N     (N = 10, 50, 100)
  page  GET /subscriptions/ with N rows      (N = 10, 25, 100; the page size is patched)

as p50/p95 over BENCH_REQUESTS requests (default 50) and SQL statements per request, at
10k and 100k subscriptions; the baselines are the same requests by a superuser (no
permission filtering) in the same run. Targets: p95 <= 100 ms for both lists at 100k at
every page size, query counts independent of page size and table size. On PostgreSQL,
EXPLAIN ANALYZE of the restricted API list's statements is printed when a target is missed
(or with BENCH_EXPLAIN=1). The API's count is capped (orchestrator.pagination): beyond the cap
it is checked as a lower bound.

The bench's rows (products named `bench-list-*`, user `bench-list-viewer`) are removed at
the start and at the end; BENCH_KEEP=1 keeps them for a closer look.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
os.environ.setdefault("SECRET_KEY", "benchmark-only-secret-key")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Permission  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402
from guardian.utils import get_user_obj_perms_model  # noqa: E402

import subscriptions.views as subscription_pages  # noqa: E402
from bench.database import vacuum_analyze  # noqa: E402
from orchestrator import services  # noqa: E402
from subscriptions.models import Product, ProductType, Subscription  # noqa: E402

PREFIX = "bench-list-"
PRODUCTS = 20
SIZES = (10_000, 100_000)
BATCH = 5_000
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "50"))
TARGET_P95_MS = 100.0
API_SIZES = (10, 50, 100)
PAGE_SIZES = (10, 25, 100)
STATUSES = ["active"] * 16 + ["terminated"] * 2 + ["provisioning", "initial"]


@contextlib.contextmanager
def explicit_created_at():
    """Let bulk inserts set `created_at` (spread over a year, as real data would be)."""
    field = Subscription._meta.get_field("created_at")
    field.auto_now_add = False
    try:
        yield
    finally:
        field.auto_now_add = True


def clean_up() -> None:
    user = get_user_model().objects.filter(username=f"{PREFIX}viewer").first()
    if user is not None:
        get_user_obj_perms_model(Subscription).objects.filter(user=user).delete()
        user.delete()
    get_user_model().objects.filter(username=f"{PREFIX}admin").delete()
    services.delete_in_batches(Subscription.objects.filter(product__name__startswith=PREFIX))
    Product.objects.filter(name__startswith=PREFIX).delete()
    ProductType.objects.filter(name=f"{PREFIX}type").delete()


def make_products() -> list[Product]:
    product_type = ProductType.objects.create(name=f"{PREFIX}type")
    return [
        Product.objects.create(name=f"{PREFIX}{index:02d}", product_type=product_type,
                               tag=f"B{index:02d}")
        for index in range(PRODUCTS)
    ]


def add_subscriptions(products: list[Product], viewer, start: int, stop: int) -> None:
    """Subscriptions start..stop-1; the viewer may see the even ones (object permission)."""
    permission = Permission.objects.get(codename="view_subscription",
                                        content_type__app_label="subscriptions")
    grant_model = get_user_obj_perms_model(Subscription)  # the direct foreign-key model
    now = timezone.now()
    for first in range(start, stop, BATCH):
        rows = [
            Subscription(
                id=uuid.uuid4(),
                product=products[index % PRODUCTS],
                customer_id=f"customer-{index % 997:03d}",
                description=f"bench subscription {index:06d}",
                status=STATUSES[index % len(STATUSES)],
                insync=index % 50 != 0,
                instance_values={"index": index, "vlan": 2 + index % 4000},
                created_at=now - datetime.timedelta(seconds=300 * (stop - index)),
            )
            for index in range(first, min(first + BATCH, stop))
        ]
        with transaction.atomic(), explicit_created_at():
            Subscription.objects.bulk_create(rows)
            grant_model.objects.bulk_create(
                grant_model(user=viewer, permission=permission, content_object=row)
                for number, row in enumerate(rows, start=first) if number % 2 == 0
            )
    vacuum()


def vacuum() -> None:
    """The list's tables vacuumed and analyzed, so the figures are repeatable."""
    vacuum_analyze(Subscription, get_user_obj_perms_model(Subscription),
                   Subscription.depends_on.through, Permission)


def measure(client: Client, url: str, expect_count: int | None = None) -> dict:
    """p50/p95 in ms over REQUESTS requests, and the statements of one request."""
    for _ in range(3):  # warm-up: connections, caches, template loading
        started = time.perf_counter()
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
    repeat = REQUESTS
    if time.perf_counter() - started > 2:
        repeat = 3
        print(f"  {url} takes {time.perf_counter() - started:.1f}s: timing 3 requests only")
    if expect_count is not None:
        body = response.json()
        count = body["count"]
        if body.get("count_exact", True):
            assert count == expect_count, f"{url}: {count} listed, {expect_count} visible"
        else:  # a capped count: a lower bound
            assert count <= expect_count, f"{url}: at least {count} listed, {expect_count} visible"
    else:
        assert b"bench subscription" in response.content, f"{url} lists no subscription"
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    return {
        "p50": statistics.median(times),
        "p95": statistics.quantiles(times, n=20)[-1] if len(times) > 3 else max(times),
        "queries": len(queries.captured_queries),
        "captured": queries.captured_queries,
    }


@contextlib.contextmanager
def page_size(size: int):
    saved = subscription_pages.PAGE_SIZE
    subscription_pages.PAGE_SIZE = size
    try:
        yield
    finally:
        subscription_pages.PAGE_SIZE = saved


def run_lists(client: Client, visible: int | None) -> dict[tuple[str, int], dict]:
    results = {}
    for size in API_SIZES:
        results[("api", size)] = measure(client, f"/api/subscriptions/?limit={size}", visible)
    for size in PAGE_SIZES:
        with page_size(size):
            results[("page", size)] = measure(client, "/subscriptions/")
    return results


def explain(captured: list[dict]) -> None:
    """EXPLAIN ANALYZE of each statement reading the subscriptions table (PostgreSQL)."""
    if connection.vendor != "postgresql":
        print("(EXPLAIN ANALYZE is printed on PostgreSQL only)")
        return
    for query in captured:
        sql = query["sql"]
        if "subscriptions_subscription" not in sql or not sql.lstrip().upper().startswith(
            "SELECT"
        ):
            continue
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plan = [row[0] for row in cursor.fetchall()]
        print(f"\n--- {query['time']}s  {sql[:300]}{'...' if len(sql) > 300 else ''}")
        for line in plan:
            print("    " + line)


def report(table: dict, baseline: dict) -> bool:
    """Print the figures; return whether the targets are met."""
    ok = True
    print(f"\n{'list':<6}{'rows':>6}{'table':>9}{'p50 ms':>9}{'p95 ms':>9}{'queries':>9}"
          f"{'superuser p95':>15}{'ratio':>7}")
    for size_rows in SIZES:
        for (kind, rows), figures in table[size_rows].items():
            base = baseline.get((size_rows, kind, rows))
            base_p95 = f"{base['p95']:.1f}" if base else "-"
            ratio = f"{figures['p95'] / base['p95']:.1f}x" if base else "-"
            print(f"{kind:<6}{rows:>6}{size_rows:>9}{figures['p50']:>9.1f}{figures['p95']:>9.1f}"
                  f"{figures['queries']:>9}{base_p95:>15}{ratio:>7}")
    big, small = table[SIZES[-1]], table[SIZES[0]]
    print()
    for kind, sizes in (("api", API_SIZES), ("page", PAGE_SIZES)):
        counts = {big[(kind, size)]["queries"] for size in sizes}
        counts |= {small[(kind, size)]["queries"] for size in sizes}
        constant = len(counts) == 1
        ok &= constant
        growth = big[(kind, sizes[1])]["p95"] / small[(kind, sizes[1])]["p95"]
        page_growth = big[(kind, sizes[-1])]["p95"] / big[(kind, sizes[0])]["p95"]
        worst = max(sizes, key=lambda size: big[(kind, size)]["p95"])
        meets = big[(kind, worst)]["p95"] <= TARGET_P95_MS
        ok &= meets
        print(f"{kind}: queries per request {sorted(counts)} "
              f"({'constant' if constant else 'NOT constant'}); p95 100k/10k {growth:.1f}x; "
              f"p95 {sizes[-1]}/{sizes[0]} rows {page_growth:.1f}x; "
              f"worst p95 at 100k: {big[(kind, worst)]['p95']:.1f} ms at {worst} rows "
              f"({'meets' if meets else 'MISSES'} the {TARGET_P95_MS:.0f} ms target at every "
              "page size)")
    return ok


def main() -> None:
    call_command("migrate", verbosity=0)
    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    clean_up()
    vacuum()
    user_model = get_user_model()
    viewer = user_model.objects.create_user(f"{PREFIX}viewer", password=None)
    admin = user_model.objects.create_superuser(f"{PREFIX}admin", password=None)
    assert not viewer.has_perm("subscriptions.view_subscription")
    products = make_products()
    viewer_client, admin_client = Client(), Client()
    viewer_client.force_login(viewer)
    admin_client.force_login(admin)
    others = Subscription.objects.exclude(product__name__startswith=PREFIX).count()
    table, baseline, created = {}, {}, 0
    try:
        for size in SIZES:
            started = time.perf_counter()
            add_subscriptions(products, viewer, created, size)
            created = size
            print(f"{size:,} subscriptions ({(size + 1) // 2:,} visible to the viewer) in "
                  f"{time.perf_counter() - started:.1f}s")
            table[size] = run_lists(viewer_client, (size + 1) // 2)
            for kind, rows in (("api", 50), ("page", 25)):
                url = f"/api/subscriptions/?limit={rows}" if kind == "api" else "/subscriptions/"
                baseline[(size, kind, rows)] = measure(
                    admin_client, url, size + others if kind == "api" else None
                )
        print(f"\ndatabase: {connection.vendor}; {REQUESTS} requests per figure; "
              f"viewer: no group, no model permission, guardian object permissions")
        ok = report(table, baseline)
        if not ok or os.environ.get("BENCH_EXPLAIN"):
            explain(table[SIZES[-1]][("api", 50)]["captured"])
    finally:
        if not os.environ.get("BENCH_KEEP"):
            clean_up()
    print("\nall targets met" if ok else "\nTARGETS MISSED")


if __name__ == "__main__":
    main()
