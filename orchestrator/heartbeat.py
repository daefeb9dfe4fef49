"""Workers report themselves: a Celery worker bootstep that writes the worker's row
(`WorkerHeartbeat`: node name, queues, pid, host, pool, started, last seen) when it starts,
every ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS from a thread of its own, and when it stops.

The workers page, `GET /api/workers/` and the metrics read those rows (selectors.workers), so
nobody broadcasts to the workers while a page loads (STYLE pitfall 13), and a worker killed
without a word shows as lost once its heartbeats stop. Registered on the Celery app in
`orchestrator/celery.py`; runs in every `celery worker`, whatever its pool.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from celery import bootsteps
from celery.concurrency import ALIASES
from django.conf import settings
from django.db import connection
from django.utils import timezone

logger = logging.getLogger(__name__)


def pool_name(pool_cls: Any) -> str:
    """The `--pool` name of a worker's pool class (`threads`, `prefork`, `solo`...)."""
    path = f"{getattr(pool_cls, '__module__', '')}:{getattr(pool_cls, '__name__', '')}"
    return next((name for name, target in ALIASES.items() if target == path), path)


def worker_details(worker: Any) -> dict[str, Any]:
    """What a worker says about itself in each heartbeat."""
    return {
        "name": worker.hostname,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "queues": list(worker.app.amqp.queues.consume_from),
        "pool": pool_name(worker.pool_cls),
        "concurrency": int(worker.concurrency or 0),
        "started_at": timezone.now(),
    }


class WorkerHeartbeatStep(bootsteps.StartStopStep):
    """Starts the heartbeat thread with the worker; records a clean stop."""

    label = "Orchestrator heartbeat"

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.details: dict[str, Any] = {}

    def start(self, worker: Any) -> None:
        from orchestrator import services

        self.details = worker_details(worker)
        self.beat(services.forget_old_workers)
        self.beat(services.record_worker_heartbeat, **self.details)
        self.thread = threading.Thread(
            target=self.run, name="orchestrator-heartbeat", daemon=True
        )
        self.thread.start()

    def run(self) -> None:
        from orchestrator import services

        interval = settings.ORCHESTRATOR_WORKER_HEARTBEAT_SECONDS
        while not self.stopping.wait(interval):
            self.beat(services.record_worker_heartbeat, **self.details)

    def stop(self, worker: Any) -> None:
        from orchestrator import services

        if self.thread is None:
            return
        self.stopping.set()
        self.thread.join(timeout=5)
        self.thread = None
        self.beat(
            services.record_worker_stopped, name=self.details["name"], pid=self.details["pid"]
        )

    terminate = stop  # a cold shutdown (a second Ctrl-C, SIGQUIT) says it stopped too

    @staticmethod
    def beat(write: Any, **kwargs: Any) -> None:
        """One write; a database that does not answer costs a log line, never the worker.
        The connection is closed after each write: nothing stays open between heartbeats
        (or is inherited by the pool's forked processes)."""
        try:
            write(**kwargs)
        except Exception as error:  # noqa: BLE001 - the worker goes on without its heartbeat
            logger.warning("worker heartbeat not recorded: %s", error)
        finally:
            connection.close()
