"""Run logs: what a run logs (and, with `log_prints`, prints) is kept with its process.

While a worker runs a process (`runner.execute_run`), the process's `RunLog` is the
context's sink, and the runner (around each step) and the flow engine (around the flow
function and each task attempt) say which step or task the code runs for (`log_scope`).
`RunLogHandler`, on the root logger, turns each record made in that context at
`ORCHESTRATOR_RUN_LOG_LEVEL` or above into a `ProcessLog` line: tagged with the step or
task (name, task key, attempt), redacted of the run's secrets, bounded per process
(`ORCHESTRATOR_RUN_LOG_MAX_LINES` lines of `ORCHESTRATOR_RUN_LOG_MAX_CHARS` characters; one
last line says the log was cut).

Lines are buffered in memory and written by `flush()`, which the runner and the flow engine
call between step transactions, never inside one: so the lines of an attempt that failed
and was rolled back are kept (they explain the failure), a step's transaction stays its own
(its log lines are not part of what commits or rolls back with it), and a step or task that
logs nothing costs nothing. The price: a step's lines appear when it ends (a flow's after
each task attempt), and the lines of an attempt whose worker died are only in that worker's
own log output.

The same context gives every line the worker prints its run: `RunContextFilter` adds
`process_id`, `step` and `attempt` to each record (the settings' `LOGGING` formats them as
`process=... step=...`, or as JSON fields with `LOG_FORMAT=json`), so a worker's log can be
searched by process.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings

from orchestrator.redaction import current_redactor

if TYPE_CHECKING:
    from orchestrator.redaction import Redactor

# Celery's stand-in for stdout: prints that are not `log_prints` are not run log lines.
IGNORED_LOGGERS = ("celery.redirected",)


class RunLog:
    """The log lines of one process during one worker's turn at it, waiting to be written."""

    def __init__(self, process_id: Any, redact: Redactor) -> None:
        self.process_id = process_id
        self.redact = redact
        self.level = logging.getLevelName(settings.ORCHESTRATOR_RUN_LOG_LEVEL)
        self.max_lines = settings.ORCHESTRATOR_RUN_LOG_MAX_LINES
        self.max_chars = settings.ORCHESTRATOR_RUN_LOG_MAX_CHARS
        self.lock = threading.Lock()
        self.pending: list[Any] = []
        self.stored: int | None = None  # lines the process has in the database (read lazily)

    def add(self, record: logging.LogRecord, scope: LogScope) -> None:
        from orchestrator.models import ProcessLog

        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        # The context's redactor when there is one: it also knows what a step adds to the
        # run's secrets while it runs (a callback step's token).
        redact = current_redactor() or self.redact
        message = redact.text(message)
        if len(message) > self.max_chars:
            cut = len(message) - self.max_chars
            message = f"{message[:self.max_chars]}… [{cut} more characters not kept]"
        line = ProcessLog(
            process_id=self.process_id, step=scope.step[:255], task_key=scope.task_key,
            attempt=scope.attempt, level=record.levelno, logger=record.name[:255],
            message=message, created_at=datetime.fromtimestamp(record.created, UTC),
        )
        with self.lock:
            self.pending.append(line)

    def flush(self) -> None:
        """Write the waiting lines (one INSERT); call outside any step transaction."""
        from orchestrator.models import ProcessLog

        with self.lock:  # held while writing, so lines are stored in the order they came
            if not self.pending:
                return
            lines, self.pending = self.pending, []
            if self.stored is None:
                self.stored = ProcessLog.objects.filter(process_id=self.process_id).count()
            room = self.max_lines - self.stored
            if room < len(lines):
                kept = lines[:max(room, 0)]
                if room >= 0:  # the marker is written once, as line max_lines + 1
                    kept.append(self.truncation_line(lines[-1]))
                lines = kept
            if lines:
                ProcessLog.objects.bulk_create(lines)
                self.stored += len(lines)

    def flush_safely(self) -> None:
        """`flush()`, but a failure to store log lines is logged, never raised: losing them
        must not fail the run (the worker's own output still has them)."""
        try:
            self.flush()
        except Exception:  # noqa: BLE001 - see above
            logging.getLogger(__name__).exception(
                "could not store run log lines of process %s", self.process_id
            )

    def truncation_line(self, last: Any) -> Any:
        from orchestrator.models import ProcessLog

        return ProcessLog(
            process_id=self.process_id, step="", level=logging.WARNING, logger=__name__,
            created_at=last.created_at,
            message=f"Run log truncated: more than {self.max_lines} lines; the rest are only "
                    "in the worker's own log output.",
        )


@dataclasses.dataclass(frozen=True)
class LogScope:
    """Where log records go (`sink`) and which step or task of the run made them."""

    sink: RunLog
    step: str = ""
    task_key: str = ""
    attempt: int = 1


_scope: contextvars.ContextVar[LogScope | None] = contextvars.ContextVar(
    "orchestrator_run_log", default=None
)


@contextlib.contextmanager
def capturing(process_id: Any, redact: Redactor) -> Iterator[RunLog]:
    """A worker's turn at a process: what is logged in this context is kept with it
    (flushed when the block ends, whatever happened in it)."""
    sink = RunLog(process_id, redact)
    token = _scope.set(LogScope(sink))
    try:
        yield sink
    finally:
        _scope.reset(token)
        sink.flush_safely()


@contextlib.contextmanager
def log_scope(step: str, task_key: str = "", attempt: int = 1) -> Iterator[None]:
    """Inside the block, the current run's log lines are tagged with this step or task."""
    current = _scope.get()
    if current is None:
        yield
        return
    token = _scope.set(LogScope(current.sink, step, task_key, attempt))
    try:
        yield
    finally:
        _scope.reset(token)


def flush() -> None:
    """Write the current run's waiting log lines; the caller is between transactions."""
    current = _scope.get()
    if current is not None and current.sink.pending:
        current.sink.flush_safely()


class RunLogHandler(logging.Handler):
    """On the root logger: records made while a run is the context's are kept with it."""

    def emit(self, record: logging.LogRecord) -> None:
        current = _scope.get()
        if current is None or record.name in IGNORED_LOGGERS:
            return
        if record.levelno < current.sink.level:
            return
        try:
            current.sink.add(record, current)
        except Exception:  # noqa: BLE001 - logging never fails the code that logs
            self.handleError(record)


class RunContextFilter(logging.Filter):
    """Adds the run a record was made for: `process_id`, `step`, `attempt` (empty outside
    runs) and `run` (`process=<id> step=<name> ` or nothing), for formatters."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = _scope.get()
        if current is None:
            record.process_id, record.step, record.attempt, record.run = "", "", "", ""
            return True
        record.process_id = str(current.sink.process_id)
        record.step, record.attempt = current.step, current.attempt
        run = f"process={record.process_id} "
        if current.step:
            run += f"step={quote(current.step)} attempt={current.attempt} "
        record.run = run
        return True


def keep_run_log_level(logger: logging.Logger, loglevel: int | None = None,
                       **kwargs: Any) -> None:
    """Celery's `after_setup_logger`: the worker's `--loglevel` sets the root logger's
    level; it should only set what the console shows, not what run logs keep."""
    if loglevel is None:
        return
    for handler in logger.handlers:
        if not isinstance(handler, RunLogHandler):
            handler.setLevel(max(handler.level, loglevel))
    run_level = logging.getLevelName(settings.ORCHESTRATOR_RUN_LOG_LEVEL)
    logger.setLevel(min(loglevel, run_level))


class JsonFormatter(logging.Formatter):
    """`LOG_FORMAT=json`: one JSON object per line (`time`, `level`, `logger`, `message`,
    and while a worker runs a process `process_id`, `step`, `attempt`; `exception`), with
    `RunContextFilter` on the handler."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if getattr(record, "process_id", ""):
            entry["process_id"] = record.process_id
            if record.step:
                entry.update(step=record.step, attempt=record.attempt)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def quote(value: str) -> str:
    """A value as logfmt writes it: bare when it has no space, quote or equals sign."""
    if value and not any(char in value for char in ' "='):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
