"""Prometheus metrics (`GET /metrics`), computed from the database and the broker at scrape
time, so every web process answers the same whichever one the scrape reaches.

- `orchestrator_processes{status}`: runs per status (every status, 0 included);
- `orchestrator_runs_waiting_for_slot`: `queued` runs waiting for a concurrency slot;
- `orchestrator_engine_paused`: 1 while an admin has paused the engine;
- `orchestrator_step_duration_seconds`: a gauge histogram of the step attempts that finished
  in the last ORCHESTRATOR_METRICS_WINDOW_SECONDS (among the newest STEP_SCAN_LIMIT);
- `orchestrator_workers{status}`: workers `alive`, `stopped`, `lost` (their heartbeats);
- `orchestrator_workers_alive{queue}`: live workers consuming each queue;
- `orchestrator_broker_up`: 1 when the broker answered this scrape;
- `orchestrator_queue_messages{queue}`: messages waiting in the broker per queue, not yet
  delivered to a worker (absent while the broker is down).

The step histogram is a *gauge* histogram over a recent window, not an ever-growing counter:
step rows are deleted with old task runs, and a total recomputed from them could go down. Read
it as is: `histogram_quantile(0.95, orchestrator_step_duration_seconds_bucket)` is the p95 of
the last window.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator

from django.conf import settings
from django.db.models import Count, DurationField, ExpressionWrapper, F, Max, Q, Sum
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from orchestrator import health, selectors
from orchestrator.models import ProcessStatus, ProcessStep

logger = logging.getLogger(__name__)

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600)
# The newest step rows a scrape reads at most: a bounded scan by primary key, whatever the
# size of the step log.
STEP_SCAN_LIMIT = 100_000


def step_durations(since: datetime.datetime) -> tuple[list[int], int, float]:
    """Cumulative counts per bucket of STEP_BUCKETS, the total and the sum of seconds of the
    step attempts that finished since `since` (among the newest STEP_SCAN_LIMIT rows)."""
    newest = ProcessStep.objects.aggregate(newest=Max("id"))["newest"] or 0
    duration = ExpressionWrapper(F("completed_at") - F("started_at"), output_field=DurationField())
    buckets = {
        f"le_{index}": Count("id", filter=Q(duration__lte=datetime.timedelta(seconds=bound)))
        for index, bound in enumerate(STEP_BUCKETS)
    }
    result = (
        ProcessStep.objects.filter(id__gt=newest - STEP_SCAN_LIMIT, completed_at__gte=since)
        .annotate(duration=duration)
        .aggregate(total=Count("id"), seconds=Sum("duration"), **buckets)
    )
    counts = [result[f"le_{index}"] for index in range(len(STEP_BUCKETS))]
    seconds = result["seconds"].total_seconds() if result["seconds"] else 0.0
    return counts, result["total"], seconds


def queue_depths(names: list[str], timeout: int) -> dict[str, int]:
    """Messages waiting in the broker per queue (0 for a queue not declared yet); raises when
    the broker does not answer within `timeout` seconds."""
    from kombu import Connection
    from kombu.exceptions import ChannelError

    depths: dict[str, int] = {}
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    with Connection(
        settings.CELERY_BROKER_URL, transport_options=options, connect_timeout=timeout
    ) as connection:
        connection.ensure_connection(max_retries=0)
        channel = connection.channel()
        try:
            for name in names:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except ChannelError:  # not declared yet: nothing waits there
                    depths[name] = 0
                    channel.close()  # AMQP closes a channel after a failed passive declare
                    channel = connection.channel()
        finally:
            channel.close()
    return depths


class OrchestratorCollector:
    """Reads everything afresh at each scrape (prometheus_client's custom collector)."""

    def collect(self) -> Iterator[Metric]:
        yield from self.process_metrics()
        yield self.step_metric()
        yield from self.worker_metrics()
        yield from self.broker_metrics()

    def process_metrics(self) -> Iterator[Metric]:
        counts = selectors.process_counts_by_status()
        processes = GaugeMetricFamily(
            "orchestrator_processes", "Runs per status.", labels=["status"]
        )
        for status in ProcessStatus.values:
            processes.add_metric([status], counts.get(status, 0))
        yield processes
        yield GaugeMetricFamily(
            "orchestrator_runs_waiting_for_slot",
            "Queued runs waiting for a concurrency slot of their workflow.",
            value=selectors.runs_waiting_for_slot(),
        )
        yield GaugeMetricFamily(
            "orchestrator_engine_paused",
            "1 while the engine is paused for maintenance.",
            value=int(selectors.engine_is_paused()),
        )

    def step_metric(self) -> Metric:
        window = settings.ORCHESTRATOR_METRICS_WINDOW_SECONDS
        counts, total, seconds = step_durations(
            timezone.now() - datetime.timedelta(seconds=window)
        )
        buckets = [(str(bound), count) for bound, count in zip(STEP_BUCKETS, counts, strict=True)]
        return GaugeHistogramMetricFamily(
            "orchestrator_step_duration_seconds",
            f"Durations of the step attempts that finished in the last {window} s.",
            buckets=[*buckets, ("+Inf", total)],
            gsum_value=seconds,
        )

    def worker_metrics(self) -> Iterator[Metric]:
        workers = list(selectors.workers())
        by_status = GaugeMetricFamily(
            "orchestrator_workers", "Workers by their heartbeats' status.", labels=["status"]
        )
        for status in selectors.WORKER_STATUSES:
            by_status.add_metric([status], sum(1 for row in workers if row.status == status))
        yield by_status
        alive = GaugeMetricFamily(
            "orchestrator_workers_alive", "Live workers consuming each queue.", labels=["queue"]
        )
        for queue in configured_queues():
            alive.add_metric(
                [queue],
                sum(1 for row in workers if row.status == "alive" and queue in row.queues),
            )
        yield alive

    def broker_metrics(self) -> Iterator[Metric]:
        try:
            depths = queue_depths(configured_queues(), health.PROBE_TIMEOUT_SECONDS)
        except Exception as error:  # noqa: BLE001 - a broker that is down is a metric
            logger.warning("metrics: cannot read the queues: %s", health.describe_failure(error))
            depths = None
        yield GaugeMetricFamily(
            "orchestrator_broker_up",
            "1 when the broker answered this scrape.",
            value=int(depths is not None),
        )
        if depths is not None:
            messages = GaugeMetricFamily(
                "orchestrator_queue_messages",
                "Messages waiting in the broker, not yet delivered to a worker.",
                labels=["queue"],
            )
            for queue, count in depths.items():
                messages.add_metric([queue], count)
            yield messages


def configured_queues() -> list[str]:
    return [queue.name for queue in settings.CELERY_TASK_QUEUES]


registry = CollectorRegistry(auto_describe=False)
registry.register(OrchestratorCollector())
