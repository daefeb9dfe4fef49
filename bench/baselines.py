"""Baselines the engine's benchmarks measure themselves against in the same run."""

from __future__ import annotations

import time

import psycopg
from django.db import connection


def psycopg_commit_ms_per_row(rows: int = 100) -> float:
    """INSERT + COMMIT through psycopg, on a connection of its own (what a step or a task
    run is measured against: one committed row), per row."""
    params = connection.settings_dict
    with psycopg.connect(
        host=params["HOST"] or "127.0.0.1", port=params["PORT"] or 5432,
        user=params["USER"], password=params["PASSWORD"] or None, dbname=params["NAME"],
    ) as raw:
        start = time.perf_counter()
        for index in range(rows):
            raw.execute(
                "INSERT INTO orchestrator_workerping (marker, created_at) VALUES (%s, now())",
                (f"raw:{index}",),
            )
            raw.commit()
        elapsed = time.perf_counter() - start
        raw.execute("DELETE FROM orchestrator_workerping WHERE marker LIKE 'raw:%%'")
        raw.commit()
    return elapsed * 1000 / rows
