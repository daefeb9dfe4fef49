"""Elsewhere than PostgreSQL (SQLite): a `NamedLock` row with a lease its holder renews.

A row is taken with one conditional INSERT after deleting an expired one; a heartbeat
thread renews the lease while the lock is held, so a holder that died frees the lock once
its lease (ORCHESTRATOR_LEASE_SECONDS) has expired. Inside a transaction on SQLite (a step
runs in one), the transaction already holds the database's only write lock: the row is
written in it, and no one else can take or free a lock until it ends.
"""

from __future__ import annotations

import datetime
import secrets
import threading
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from orchestrator.lock.base import Lock, LockTimeout, deadline_after
from orchestrator.models import NamedLock

POLL_SECONDS = 0.05


class TableLock(Lock):
    borrowed: BaseDatabaseWrapper | None = None
    heartbeat: threading.Thread | None = None
    stopped: threading.Event | None = None

    def open_connection(self) -> BaseDatabaseWrapper:
        current = connections[DEFAULT_DB_ALIAS]
        if current.in_atomic_block:
            self.borrowed = current
            return current
        return super().open_connection()

    def close_connection(self, connection: BaseDatabaseWrapper) -> None:
        if connection is not self.borrowed:
            connection.close()

    def sql(self, connection: BaseDatabaseWrapper, statement: str, params: list) -> int:
        table = connection.ops.quote_name(NamedLock._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(statement.format(table=table), params)  # only the name is formatted
            return cursor.rowcount

    def expiry(self, connection: BaseDatabaseWrapper, seconds: float = 0) -> str:
        moment = timezone.now() + datetime.timedelta(seconds=seconds)
        return connection.ops.adapt_datetimefield_value(moment)

    def take(self, connection: BaseDatabaseWrapper, timeout: float | None) -> None:
        self.owner = secrets.token_hex(8)
        deadline = deadline_after(timeout)
        while True:
            self.sql(connection, "DELETE FROM {table} WHERE key = %s AND expires_at < %s",
                     [self.key, self.expiry(connection)])
            taken = self.sql(
                connection,
                "INSERT INTO {table} (key, label, owner, expires_at) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (key) DO NOTHING",
                [self.key, self.label[:401], self.owner,
                 self.expiry(connection, settings.ORCHESTRATOR_LEASE_SECONDS)],
            )
            if taken:
                break
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(self, timeout)
            time.sleep(POLL_SECONDS)
        if connection is not self.borrowed:
            self.stopped = threading.Event()
            self.heartbeat = threading.Thread(target=self.renew, name=f"lock-{self.label}",
                                              daemon=True)
            self.heartbeat.start()

    def renew(self) -> None:
        connection = connections.create_connection(DEFAULT_DB_ALIAS)
        interval = max(settings.ORCHESTRATOR_LEASE_SECONDS / 3, 0.5)
        try:
            while not self.stopped.wait(interval):
                self.sql(connection, "UPDATE {table} SET expires_at = %s "
                         "WHERE key = %s AND owner = %s",
                         [self.expiry(connection, settings.ORCHESTRATOR_LEASE_SECONDS),
                          self.key, self.owner])
        finally:
            connection.close()

    def give_back(self, connection: BaseDatabaseWrapper) -> None:
        if self.stopped is not None:
            self.stopped.set()
            self.heartbeat.join()
        self.sql(connection, "DELETE FROM {table} WHERE key = %s AND owner = %s",
                 [self.key, self.owner])
