"""`log_prints`: inside a flow or task run that asks for it, `print()` becomes a log line of
the run (logger `orchestrator.flows.prints`, level INFO), as in Prefect.

`print` is wrapped once per process; the wrapper looks at a context variable, so code
outside such a run (and prints to a file other than stdout) prints as usual.
"""

from __future__ import annotations

import builtins
import contextvars
import io
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger("orchestrator.flows.prints")

_enabled: contextvars.ContextVar[bool] = contextvars.ContextVar("log_prints", default=False)
_original_print = builtins.print


def _print(*args: Any, **kwargs: Any) -> None:
    target = kwargs.get("file")
    if not _enabled.get() or (target is not None and target is not sys.stdout):
        _original_print(*args, **kwargs)
        return
    buffer = io.StringIO()
    _original_print(*args, **{**kwargs, "file": buffer, "end": ""})
    logger.info(buffer.getvalue())


@contextmanager
def printing_to_log(enabled: bool | None) -> Iterator[None]:
    """Inside the block, prints go to the run log when `enabled` (None keeps what is set)."""
    if enabled is None:
        yield
        return
    if builtins.print is not _print:
        builtins.print = _print
    token = _enabled.set(bool(enabled))
    try:
        yield
    finally:
        _enabled.reset(token)
