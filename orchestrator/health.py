"""Can this process reach its database and its broker? One line per problem, never a traceback.

`check_database()` and `check_broker()` return None when the service answers, or one line
naming the service's `host:port` (never its credentials) and what failed, for example
"cannot reach broker at 127.0.0.1:6390: connection refused". `manage.py check_services`
prints them; the embedded launcher runs that command before anything else.

`probe()` is what `GET /healthz` answers from: each part (web, database, broker) "ok" or
"down", checked with a short timeout so a load balancer's probe never hangs.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

from orchestrator.config import describe_url_host

CONNECT_TIMEOUT_SECONDS = 5
# /healthz: a part that does not answer within this long is down.
PROBE_TIMEOUT_SECONDS = 2


def _chain(error: BaseException):
    """The error and its causes/contexts, outermost first (cycles are cut)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def describe_failure(error: BaseException) -> str:
    """A short, lower-case reason for a connection failure ("connection refused", ...)."""
    for link in _chain(error):
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, socket.gaierror):
            return "unknown host"
        if isinstance(link, TimeoutError | socket.timeout):
            return "timed out"
    text = " ".join(str(link) for link in _chain(error)).lower()
    known = (
        ("connection refused", "connection refused"),
        ("name or service not known", "unknown host"),
        ("nodename nor servname", "unknown host"),
        ("temporary failure in name resolution", "unknown host"),
        ("timed out", "timed out"),
        ("timeout expired", "timed out"),
        ("password authentication failed", "authentication failed"),
        ("authentication failed", "authentication failed"),
        ("access_refused", "authentication failed"),
        ("invalid username-password", "authentication failed"),
        ("no route to host", "no route to host"),
        ("network is unreachable", "network is unreachable"),
    )
    for needle, reason in known:
        if needle in text:
            return reason
    first = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return first or type(error).__name__


def database_location(settings_dict: dict) -> str:
    """`host:port` of a database connection (or the SQLite file), without credentials."""
    if settings_dict["ENGINE"].endswith("sqlite3"):
        return str(settings_dict["NAME"])
    host = settings_dict.get("HOST") or "localhost"
    port = settings_dict.get("PORT") or ""
    return f"{host}:{port}" if port else str(host)


def check_database(alias: str = "default", timeout: int | None = None) -> str | None:
    """Connect and run `SELECT 1`; None when that works, else one line saying what failed.

    With `timeout`, on a connection of its own that gives up connecting after that many
    seconds (the configured connection, and the one of the calling thread, are untouched).
    """
    from django.db import connections

    connection = connections[alias]
    where = database_location(connection.settings_dict)
    if timeout is not None:
        option = "connect_timeout" if connection.vendor == "postgresql" else "timeout"
        options = {**connection.settings_dict["OPTIONS"], option: timeout}
        connection = type(connection)({**connection.settings_dict, "OPTIONS": options}, alias)
    try:
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as error:  # noqa: BLE001 - any failure becomes one line
        reason = describe_failure(error)
        if "does not exist" in str(error):
            reason = next(line.strip() for line in str(error).splitlines() if line.strip())
            reason = reason.split("FATAL:", 1)[-1].strip()
        return f"cannot reach database at {where}: {reason}"
    finally:
        connection.close()
    return None


def check_broker(
    url: str | None = None,
    transport_options: dict | None = None,
    timeout: int = CONNECT_TIMEOUT_SECONDS,
) -> str | None:
    """Connect to the Celery broker; None when that works, else one line saying what failed."""
    from django.conf import settings

    url = url if url is not None else settings.CELERY_BROKER_URL
    if transport_options is None:
        transport_options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    if url.startswith("filesystem://"):
        return _check_filesystem_broker(transport_options)
    if url.startswith("memory://"):
        return None
    from kombu import Connection

    where = describe_url_host(url)
    connection = Connection(url, connect_timeout=timeout)
    try:
        connection.ensure_connection(max_retries=0)
    except Exception as error:  # noqa: BLE001 - any failure becomes one line
        return f"cannot reach broker at {where}: {describe_failure(error)}"
    finally:
        try:
            connection.release()
        except Exception:  # noqa: BLE001, S110 - closing a connection that never opened
            pass
    return None


def _check_filesystem_broker(options: dict) -> str | None:
    """The filesystem broker is a set of folders every local process must be able to write."""
    keys = ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")
    for folder in dict.fromkeys(options[key] for key in keys if options.get(key)):
        path = Path(folder)
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".health-"):
                pass
        except OSError as error:
            reason = error.strerror.lower() if error.strerror else str(error)
            return f"cannot use broker folder {path}: {reason}"
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            return f"cannot use broker folder {path}: permission denied"
    return None


def check_services() -> list[str]:
    """Every problem found, one line each (empty when the database and the broker answer)."""
    return [line for line in (check_database(), check_broker()) if line]


def probe(timeout: int = PROBE_TIMEOUT_SECONDS) -> dict[str, str | None]:
    """Each part of the service: None when it answers, else the line saying what failed.

    "web" is this process, which answers whenever it can run this at all.
    """
    return {
        "web": None,
        "database": check_database(timeout=timeout),
        "broker": check_broker(timeout=timeout),
    }
