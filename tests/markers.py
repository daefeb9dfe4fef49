"""Marker files: how a test tells a test workflow's step, running in a worker process, that
something outside the database changed (a remote is fixed, a held slot may go), and how such a
step counts its attempts where a failed attempt's rollback cannot undo the count.

They live in this test run's own var directory (`ORCHESTRATOR_VAR_DIR`: tests/settings.py makes
one per run and the workers it starts share it through the environment), not at fixed names in
/tmp: two test runs on one machine never see each other's markers (`fix-1` of one run used to
make another run's failing child succeed), and none outlives its run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from orchestrator.config import VAR_DIR

FOLDER = VAR_DIR / "markers"


def marker(name: str) -> Path:
    FOLDER.mkdir(parents=True, exist_ok=True)
    return FOLDER / name


def exists(name: str) -> bool:
    return (FOLDER / name).exists()


def count_attempt(name: str) -> int:
    """Counts one more attempt under `name`; returns how many there were, this one included."""
    path = marker(name)
    with path.open("a") as attempts:
        attempts.write(".")
    return path.stat().st_size


@contextlib.contextmanager
def present(*names: str) -> Iterator[None]:
    """The markers exist inside the block, and not after it."""
    paths = [marker(name) for name in names]
    for path in paths:
        path.touch()
    try:
        yield
    finally:
        for path in paths:
            path.unlink(missing_ok=True)
