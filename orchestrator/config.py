"""Reading configuration from the environment (12-factor), with one-line errors.

Settings call these helpers; anything wrong raises `ConfigError`, which `manage.py`
and the Celery entry point print as a single line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("ORCHESTRATOR_VAR_DIR", BASE_DIR / "var"))

DEFAULT_SECRET_KEY = "insecure-embedded-default-secret-key-change-me"  # noqa: S105
SUPPORTED_DATABASE_SCHEMES = ("sqlite", "postgres", "postgresql", "pgsql")
SUPPORTED_BROKER_SCHEMES = ("filesystem", "redis", "rediss", "amqp", "amqps", "pyamqp", "memory")
PREPARE_THRESHOLD = 5  # psycopg's own default, which Django overrides with None


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line meant for an operator."""


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use true/false, 1/0, yes/no, on/off)")


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={raw!r} must be at least {minimum}")
    return value


def log_level(name: str, default: str) -> str:
    """A logging level's name (DEBUG, INFO, WARNING, ERROR, CRITICAL), upper-cased."""
    raw = os.environ.get(name) or default
    value = raw.strip().upper()
    if value not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(f"{name}={raw!r} is not a logging level "
                          "(DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return value


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """One of `choices` (any case)."""
    raw = os.environ.get(name) or default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} is not one of: {', '.join(choices)}")
    return value


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def describe_url_host(url: str) -> str:
    """`host:port` (or the file path) of a URL, without its credentials, for error lines."""
    parts = urlsplit(url)
    if parts.hostname:
        return f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return parts.path or url.split("://", 1)[-1] or "(empty)"


def database_settings(url: str | None, conn_max_age: int = 0) -> dict:
    """The `DATABASES['default']` entry for `DATABASE_URL`, or an SQLite file under var/.
    `conn_max_age` > 0 keeps a connection open for that many seconds across requests and
    tasks, checked before each reuse (a dead one is replaced, not used)."""
    if not url:
        VAR_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        url = f"sqlite:///{VAR_DIR / 'orchestrator.sqlite3'}"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SUPPORTED_DATABASE_SCHEMES:
        raise ConfigError(
            f"DATABASE_URL scheme {scheme or '(none)'!r} is not supported "
            f"(use sqlite:///path or postgres://user@host:port/name)"
        )
    try:
        config = dj_database_url.parse(
            url, conn_max_age=conn_max_age, conn_health_checks=conn_max_age > 0
        )
    except ValueError as error:
        host = describe_url_host(url)
        raise ConfigError(f"DATABASE_URL for {host} is malformed: {error}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        make_private(config["NAME"])
        # A web process and a worker write at once: WAL lets readers go on while one
        # writes, IMMEDIATE transactions take the write lock up front (no upgrade
        # deadlocks) and the timeout waits for the lock instead of failing.
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 30,
        }
    else:
        config.setdefault("OPTIONS", {})
        config["OPTIONS"].setdefault("connect_timeout", 5)
        # Parameters travel apart from the SQL, and psycopg prepares a statement a
        # connection runs often (the runner's claim and step write: PostgreSQL parses and
        # plans them once per session, not at every step). Behind a pooler in transaction
        # mode that cannot keep prepared statements (PgBouncer before 1.21), put
        # ?server_side_binding=false in DATABASE_URL (docs/deploying.md).
        config["OPTIONS"].setdefault("server_side_binding", True)
        # Django turns psycopg's preparing off unless told (prepare_threshold None): a
        # statement run this many times in a session is prepared from then on.
        config["OPTIONS"].setdefault("prepare_threshold", PREPARE_THRESHOLD)
        # Django's backend, knowing the parameter limit that comes with it.
        config["ENGINE"] = "orchestrator.postgresql"
    return config


def make_private(name: str) -> None:
    """Make an SQLite database file owner-only (0600), like var/secret_key: it holds login
    sessions, API token digests and encrypted secrets. The file is created empty before
    SQLite first opens it, and SQLite gives its -wal and -shm files the main file's mode;
    an existing file (and its -wal/-shm) is tightened."""
    if not name or name == ":memory:" or str(name).startswith("file:"):
        return
    path = str(name)
    with contextlib.suppress(OSError):  # a file we cannot touch is not ours to tighten
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for companion in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        with contextlib.suppress(OSError):  # absent: SQLite makes it with the main's mode
            os.chmod(companion, 0o600)


def broker_url(url: str | None) -> str:
    if not url:
        return "filesystem://"
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in SUPPORTED_BROKER_SCHEMES:
        raise ConfigError(
            f"CELERY_BROKER_URL scheme {scheme or '(none)'!r} is not supported "
            "(use redis://host:port/0, amqp://user:pass@host:port// or filesystem://)"
        )
    return url


def filesystem_broker_options() -> dict:
    """Folders for kombu's server-less `filesystem://` transport, shared by all local processes."""
    folder = VAR_DIR / "broker"
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def secret_key(debug: bool) -> str:
    key = os.environ.get("SECRET_KEY", "")
    if key and key != DEFAULT_SECRET_KEY:
        return key
    # The embedded launcher keeps a generated key here; reading it lets `manage.py`
    # commands run beside `make run` without exporting it by hand.
    kept = VAR_DIR / "secret_key"
    if not key and kept.is_file():
        key = kept.read_text().strip()
        if key:
            return key
    if debug:
        return DEFAULT_SECRET_KEY
    raise ConfigError(
        "SECRET_KEY is not set: refusing to start with DEBUG off and the default secret key "
        "(set SECRET_KEY to a long random string, or DEBUG=true for local development)"
    )


def proxy_ssl_header(value: str | None) -> tuple[str, str] | None:
    """`SECURE_PROXY_SSL_HEADER`: the header a TLS-terminating proxy sets to `https` (e.g.
    `X-Forwarded-Proto`), as Django's setting wants it; None when unset."""
    name = (value or "").strip()
    if not name:
        return None
    if not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ConfigError(
            f"SECURE_PROXY_SSL_HEADER={value!r} is not a header name (e.g. X-Forwarded-Proto)"
        )
    return "HTTP_" + name.upper().replace("-", "_"), "https"


def encryption_keys(value: str | None) -> list[str]:
    """`ORCHESTRATOR_ENCRYPTION_KEYS`: comma-separated Fernet keys, the first encrypting."""
    import base64
    import binascii

    keys = [key.strip() for key in (value or "").split(",") if key.strip()]
    for number, key in enumerate(keys, start=1):
        try:
            valid = len(base64.urlsafe_b64decode(key.encode())) == 32
        except (binascii.Error, ValueError):
            valid = False
        if not valid:
            raise ConfigError(
                f"ORCHESTRATOR_ENCRYPTION_KEYS: key {number} is not a Fernet key (32 url-safe "
                "base64-encoded bytes; make one with cryptography's Fernet.generate_key())"
            )
    return keys
