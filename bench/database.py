"""What the benchmarks do to their database before they measure."""

from __future__ import annotations

from django.db import connection
from django.db.models import Model


def vacuum_analyze(*models: type[Model]) -> None:
    """Vacuum `models`' tables (every table when none is named) and give the planner fresh
    statistics, as autovacuum keeps them where it runs. On a server with it off (a
    development machine) a run's statements would be planned blind, over the dead rows of
    every earlier run, and each run would measure the ones before it (a bloated table once
    led the planner into a 10 s nested loop). PostgreSQL only: SQLite has no planner
    statistics to go stale this way."""
    if connection.vendor != "postgresql":
        return
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        if not models:
            cursor.execute("VACUUM ANALYZE")
        for model in models:
            cursor.execute(f"VACUUM ANALYZE {quote(model._meta.db_table)}")
