"""PostgreSQL: a session-level advisory lock on the lock's own connection."""

from __future__ import annotations

from django.db import OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper

from orchestrator.lock.base import Lock, LockTimeout


class AdvisoryLock(Lock):
    def take(self, connection: BaseDatabaseWrapper, timeout: float | None) -> None:
        with connection.cursor() as cursor:
            if timeout == 0:  # lock_timeout 0 would mean "no limit": just try once
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                if not cursor.fetchone()[0]:
                    raise LockTimeout(self, timeout)
                return
            limit = "0" if timeout is None else f"{max(int(timeout * 1000), 1)}ms"
            cursor.execute("SELECT set_config('lock_timeout', %s, false)", [limit])
            try:
                cursor.execute("SELECT pg_advisory_lock(%s)", [self.key])
            except OperationalError as error:
                if getattr(error.__cause__, "sqlstate", "") == "55P03":  # lock_not_available
                    raise LockTimeout(self, timeout) from None
                raise

    def give_back(self, connection: BaseDatabaseWrapper) -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])
