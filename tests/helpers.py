"""Small helpers the tests share: start a workflow and run it in-process, race starts."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connection

from orchestrator import services
from orchestrator.models import Process
from orchestrator.runner import run_process
from tests import markers


def start(name: str, *pages: dict, user=None, **kwargs) -> Process:
    return services.start_process(workflow_name=name, input_pages=list(pages), user=user, **kwargs)


def run(process: Process) -> Process:
    """Run the process as far as it goes, in this test's thread; return it reloaded."""
    run_process(str(process.pk))
    process.refresh_from_db()
    return process


def start_on(subscription, workflow: str, *pages: dict) -> Process:
    return services.start_process(
        workflow_name=workflow, subscription=subscription.pk, input_pages=list(pages)
    )


def race(starts: list[Callable[[], Any]]) -> list[Any]:
    """Run each start in its own thread, all released by one barrier; return what each
    returned or raised."""
    barrier = threading.Barrier(len(starts))
    outcomes: list[Any] = [None] * len(starts)

    def run(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            outcomes[index] = starts[index]()
        except BaseException as error:  # noqa: BLE001 - reported to the test
            outcomes[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(starts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a start never returned"
    return outcomes


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def fixed(process: Process) -> Iterator[None]:
    """The test workflows' "fixed" marker for a run that fails on purpose: inside the block its
    failing step or task succeeds (resume it there)."""
    with markers.present(f"fix-{process.pk}"):
        yield
