"""Shared fixtures: users per role, API clients, and real Celery workers on the real broker."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.db import connections, transaction
from django.test import TransactionTestCase
from rest_framework.test import APIClient

from tests.factories import user_with_role

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["tests.blueprint_helpers"]  # the blueprint tests' fixtures


@pytest.hookimpl(trylast=True)  # after pytest-django's own ordering, which it keeps
def pytest_collection_modifyitems(session, config, items) -> None:
    """The browser tests run last, however the run was asked for (`pytest tests/` collects them
    first): Playwright's sync API leaves an event loop behind in this process, and the async
    steps run in process by tests/unit after it would no longer run their ORM calls on the
    step's own connection (pyproject's testpaths order alone did not hold for such a run)."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


def pytest_sessionfinish(session, exitstatus) -> None:
    """Remove the var directory tests/settings.py made for this run (its SQLite file, broker
    folders, markers), once every worker and database of the run is gone."""
    from django.conf import settings

    if getattr(settings, "VAR_DIR_MADE_HERE", False):
        shutil.rmtree(settings.VAR_DIR, ignore_errors=True)


# --- Quick database resets on PostgreSQL ------------------------------------------------------
# Django ends a transactional test with a flush (a TRUNCATE of every table, over a second for
# 65 tables, then post_migrate), and `synced` costs some 200 statements per test. Both become
# one round trip of plain SQL here, leaving the database exactly as they would.

# What migrate made and no test changes: kept across transactional tests.
KEPT_TABLES = frozenset({"django_content_type", "auth_permission"})
ROLE_GROUP_TABLES = ("auth_group", "auth_group_permissions")
flush_tables = TransactionTestCase._fixture_teardown


@dataclass
class Copies:
    """The SQL that copies rows set aside at the session's start back into their tables."""

    role_groups: str = ""  # the role groups as migrate made them
    synced: str = ""  # the rows sync_workflows() adds to a migrated database
    synced_tables: tuple[str, ...] = ()
    catalogue: tuple = ()  # the workflow registry they were made from


COPIES = Copies()


def catalogue() -> tuple:
    """What sync_workflows() writes from the code: the registry's catalogue rows."""
    from orchestrator import registry

    return tuple((definition.name, repr(definition.catalogue_row()))
                 for definition in registry.all_definitions())


def table_names(connection) -> list[str]:
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    return sorted(set(tables) - KEPT_TABLES)


def copy_aside(cursor, tables: list[str]) -> str:
    """Copy the tables' rows into tables of their own; the SQL that copies them back."""
    quote = cursor.db.ops.quote_name
    back = []
    for table in tables:
        copy = quote(f"test_copy_{table}")
        cursor.execute(f"CREATE TABLE {copy} AS SELECT * FROM {quote(table)}")  # noqa: S608
        back.append(f"INSERT INTO {quote(table)} SELECT * FROM {copy}")  # noqa: S608
    return ";\n".join(back)


def digests(cursor, tables: list[str]) -> dict[str, str]:
    """Each table's rows, as one digest (empty: '')."""
    quote = cursor.db.ops.quote_name
    digest = "coalesce(md5(string_agg(row::text, ',' ORDER BY row::text)), '')"
    found = {}
    for table in tables:
        cursor.execute(f"SELECT {digest} FROM {quote(table)} AS row")  # noqa: S608
        found[table] = cursor.fetchone()[0]
    return found


def delete_test_data(test_case: TransactionTestCase) -> None:
    """The end of a transactional test on PostgreSQL, instead of Django's flush: its rows are
    deleted, the role groups copied back; content types and permissions are kept as they are
    (the flush makes them again)."""
    aliases = test_case._databases_names(include_mirrors=False)
    if any(connections[alias].vendor != "postgresql" for alias in aliases):
        return flush_tables(test_case)  # SQLite's flush deletes already
    for alias in aliases:
        connection = connections[alias]
        quote = connection.ops.quote_name
        statements = ["SET CONSTRAINTS ALL DEFERRED"]  # Django's foreign keys: at commit
        statements += [f"DELETE FROM {quote(table)}"  # noqa: S608 - a model's table
                       for table in table_names(connection)]
        statements.append(COPIES.role_groups)
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(";\n".join(statements))


@pytest.fixture(scope="session", autouse=True)
def database_copies(django_db_setup, django_db_blocker):
    """On PostgreSQL, set aside once: the role groups, and the rows sync_workflows() adds (then
    deleted again: each test starts from the migrated database as before)."""
    from orchestrator.services import sync_workflows

    connection = connections["default"]
    if connection.vendor != "postgresql":
        yield
        return
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        tables = table_names(connection)
        COPIES.role_groups = copy_aside(cursor, list(ROLE_GROUP_TABLES))
        before = digests(cursor, tables)
        COPIES.catalogue = catalogue()
        sync_workflows()
        after = digests(cursor, tables)
        added = [table for table in tables if after[table] != before[table]]
        changed = [table for table in added if before[table]]
        assert not changed, f"sync_workflows() changed rows migrate made in {changed}"
        COPIES.synced = copy_aside(cursor, added)
        COPIES.synced_tables = tuple(added)
        quote = connection.ops.quote_name
        cursor.execute(";\n".join(f"DELETE FROM {quote(table)}"  # noqa: S608 - a model's table
                                  for table in added))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(TransactionTestCase, "_fixture_teardown", delete_test_data)
        yield


def copy_synced_rows(connection) -> bool:
    """Copy sync_workflows()' rows back when nothing they depend on changed: the registry,
    and (in the database) the tables they go to and the products it links workflows to."""
    from subscriptions.models import Product

    if not COPIES.synced or catalogue() != COPIES.catalogue:
        return False
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        tables = (*COPIES.synced_tables, Product._meta.db_table)
        any_rows = " OR ".join(f"EXISTS (SELECT 1 FROM {quote(table)})"  # noqa: S608
                               for table in tables)
        cursor.execute(f"SELECT {any_rows}")
        if cursor.fetchone()[0]:
            return False
        cursor.execute(COPIES.synced)
    return True


@pytest.fixture
def synced(db):
    """The workflow catalogue and role groups, as migrate + migrate_workflows leave them (on
    PostgreSQL copied from the session's start: the role groups are there, from migrate or
    put back by the last transactional test)."""
    from orchestrator.roles import sync_role_groups
    from orchestrator.services import sync_workflows

    if connections["default"].vendor == "postgresql" and copy_synced_rows(connections["default"]):
        return
    sync_role_groups()
    sync_workflows()


@pytest.fixture
def viewer(synced):
    return user_with_role("viewer")


@pytest.fixture
def operator(synced):
    return user_with_role("operator")


@pytest.fixture
def admin_user(synced):
    return user_with_role("admin")


@pytest.fixture
def nobody(synced):
    """Logged in, but in no group."""
    return user_with_role(None)


@pytest.fixture
def api() -> Callable[..., APIClient]:
    def client_for(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.force_authenticate(user)
        return client

    return client_for


BOX_WORKFLOWS = ("create_box", "modify_box", "terminate_box", "validate_box", "modify_note")


@pytest.fixture
def box_product(synced):
    """The test product "Box" (tests/subscription_workflows.py) with its workflows."""
    from orchestrator.models import Workflow
    from subscriptions.models import Product, ProductType

    product = Product.objects.create(
        name="Box", product_type=ProductType.objects.create(name="Box"), tag="BOX"
    )
    product.workflows.set(Workflow.objects.filter(name__in=BOX_WORKFLOWS))
    return product


@pytest.fixture
def create_box(box_product):
    """`create_box(name="b1", **input)`: run create_box in-process; the active subscription."""
    from orchestrator import services
    from orchestrator.runner import run_process
    from subscriptions.models import Subscription

    def create(name: str = "b1", **extra):
        page = {"customer_id": "cust-1", "name": name, "size": 5, **extra}
        process = services.start_process(
            workflow_name="create_box", product=box_product.pk, input_pages=[page]
        )
        run_process(str(process.pk))
        process.refresh_from_db()
        assert process.status == "completed", process.failed_reason
        return Subscription.objects.get(pk=process.state["subscription_id"])

    return create


# Tests of runs overlapping in time: on SQLite (one writer, held by a step for its whole
# transaction) steps of different runs take turns, as docs/deploying.md says.
needs_concurrent_writers = pytest.mark.skipif(
    connections["default"].vendor != "postgresql",
    reason="SQLite has one writer: steps of different runs take turns instead of overlapping",
)


def wait_for(predicate: Callable[[], object], timeout: float = 60, interval: float = 0.1):
    """Poll until `predicate()` is truthy; fail the test with a clear message otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s: {predicate}")


class Worker:
    """A real `celery worker` process on the configured broker and the test database."""

    def __init__(self, env: dict[str, str], pool: str = "threads", concurrency: int = 4,
                 loglevel: str = "WARNING", output: Path | None = None):
        self.env, self.pool, self.concurrency = env, pool, concurrency
        self.loglevel, self.output = loglevel, output  # output: its stdout and stderr
        self.proc: subprocess.Popen | None = None

    def start(self) -> Worker:
        command = [
            sys.executable, "-m", "celery", "-A", "orchestrator", "worker",
            "-Q", "core,user,internal", "--pool", self.pool,
            "--concurrency", str(self.concurrency), "--loglevel", self.loglevel,
            "--without-gossip", "--without-mingle", "--without-heartbeat",
            "-n", f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
        ]
        if self.output is None:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True)
            return self
        with self.output.open("ab") as output:
            self.proc = subprocess.Popen(command, cwd=ROOT, env=self.env, start_new_session=True,
                                         stdout=output, stderr=subprocess.STDOUT)
        return self

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once: nothing gets to clean up."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def lease_holder(process, workers: list[Worker]) -> Worker | None:
    """Which of `workers` holds the process's lease (the lease owner names its process id; a
    solo or threads worker runs its tasks in its own process); None when nobody holds it."""
    from orchestrator.models import Process

    owner = Process.objects.values_list("lease_owner", flat=True).get(pk=process.pk)
    if not owner:
        return None
    pid = owner.split(":")[1]
    for worker in workers:
        if worker.proc and str(worker.proc.pid) == pid:
            return worker
    raise AssertionError(f"no worker of the test holds the lease of {process.pk}: {owner!r}")


def kill_lease_holder(process, workers: list[Worker], start: Callable[[], Worker]) -> None:
    """SIGKILL the worker of `workers` that holds the process's lease (the first one when
    nobody does: the run just ended) and put a spare started by `start` in its place (a
    worker takes seconds to start, so the kill tests keep one up)."""
    holder = lease_holder(process, workers) or workers[0]
    holder.kill()
    workers.remove(holder)
    workers.append(start())


def database_url_for_tests() -> str:
    """The URL of the database pytest-django created, for processes outside the test."""
    from django.db import connection

    params = connection.settings_dict
    if params["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{params['NAME']}"
    auth = params["USER"] or ""
    if params["PASSWORD"]:
        auth += f":{params['PASSWORD']}"
    host = f"{params['HOST'] or '127.0.0.1'}:{params['PORT'] or 5432}"
    return f"postgres://{auth}@{host}/{params['NAME']}"


@pytest.fixture(scope="session")
def worker_env(django_db_setup, django_db_blocker) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url_for_tests(),
        PYTHONPATH=str(ROOT),
        ORCHESTRATOR_LEASE_SECONDS=os.environ.get("ORCHESTRATOR_LEASE_SECONDS", "60"),
    )
    return env


@pytest.fixture(scope="module")
def celery_worker(worker_env):
    """One real worker (thread pool) for the test module; modules that kill and restart
    workers use `start_worker` instead, so no other worker competes with theirs. Killed at
    the module's end, as `start_worker`'s are at the test's."""
    worker = Worker(worker_env).start()
    yield worker
    worker.kill()


@pytest.fixture
def start_worker(worker_env):
    """Start extra workers (with their own env tweaks); all are killed after the test (SIGKILL:
    the test is over, and a warm shutdown takes a second or two per worker; what they leave in
    the database is deleted with the test's rows, and the messages they held are never
    delivered again within the hour of the broker's visibility timeout)."""
    workers: list[Worker] = []

    def start(pool: str = "solo", concurrency: int = 1, loglevel: str = "WARNING",
              output: Path | None = None, **env: str) -> Worker:
        worker = Worker({**worker_env, **env}, pool=pool, concurrency=concurrency,
                        loglevel=loglevel, output=output).start()
        workers.append(worker)
        return worker

    yield start
    for worker in workers:
        worker.kill()
