"""Configuration from the environment: wrong values and unreachable services give one line.

The subprocess tests run `manage.py` (and `celery`) the way an operator does and check
that a bad setting or an unreachable database/broker prints one line naming the host and
what failed, never a traceback.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import override_settings

from orchestrator import config, health
from orchestrator.config import ConfigError
from tests.helpers import closed_port

ROOT = Path(__file__).resolve().parent.parent.parent


def run_manage(
    tmp_path: Path, *arguments: str, umask: int | None = None, **env: str
) -> subprocess.CompletedProcess:
    environment = {
        key: value
        for key, value in os.environ.items()
        # DJANGO_ALLOW_ASYNC_UNSAFE: the browser tests' (check --deploy refuses it, async.E001)
        if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "DEBUG", "SECRET_KEY",
                       "DJANGO_ALLOW_ASYNC_UNSAFE")
    }
    environment.update(
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        ORCHESTRATOR_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="a-test-secret-key",
        PYTHONPATH=str(ROOT),
    )
    environment.update(env)
    environment = {key: value for key, value in environment.items() if value is not None}
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


# --- ConfigError, in process -------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["mysql://u@db:3306/x", "oracle://u@db/x", "db.example.net:5432/x", "postgre://h/x"]
)
def test_unsupported_database_scheme_is_refused_in_one_line(url):
    with pytest.raises(ConfigError) as caught:
        config.database_settings(url)
    message = str(caught.value)
    assert "\n" not in message
    assert "DATABASE_URL" in message and "not supported" in message


@pytest.mark.parametrize("url", ["kafka://h:9092", "http://h:6379", "localhost:6379"])
def test_unsupported_broker_scheme_is_refused_in_one_line(url):
    with pytest.raises(ConfigError) as caught:
        config.broker_url(url)
    assert "\n" not in str(caught.value)
    assert "CELERY_BROKER_URL" in str(caught.value)


def test_postgresql_binds_parameters_on_the_server_unless_the_url_says_not():
    options = config.database_settings("postgres://u@db:5432/x")["OPTIONS"]
    assert options["server_side_binding"] is True
    assert options["prepare_threshold"] == config.PREPARE_THRESHOLD
    behind_a_pooler = "postgres://u@db:5432/x?server_side_binding=false"
    assert config.database_settings(behind_a_pooler)["OPTIONS"]["server_side_binding"] is False


def test_embedded_defaults_are_sqlite_and_the_filesystem_broker():
    assert config.database_settings(None)["ENGINE"] == "django.db.backends.sqlite3"
    assert config.database_settings("")["ENGINE"] == "django.db.backends.sqlite3"
    assert config.broker_url(None) == "filesystem://"
    postgres = config.database_settings("postgres://u:p@db.example.net:6543/orch")
    assert postgres["HOST"] == "db.example.net" and postgres["PORT"] == 6543
    assert config.broker_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


def test_debug_off_without_a_secret_key_is_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "VAR_DIR", tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    with pytest.raises(ConfigError) as caught:
        config.secret_key(debug=False)
    assert "SECRET_KEY" in str(caught.value) and "\n" not in str(caught.value)
    monkeypatch.setenv("SECRET_KEY", config.DEFAULT_SECRET_KEY)
    with pytest.raises(ConfigError):
        config.secret_key(debug=False)
    assert config.secret_key(debug=True) == config.DEFAULT_SECRET_KEY
    monkeypatch.setenv("SECRET_KEY", "something-long-and-random")
    assert config.secret_key(debug=False) == "something-long-and-random"


def test_the_key_kept_by_the_embedded_launcher_is_used_when_none_is_set(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "VAR_DIR", tmp_path)
    monkeypatch.delenv("SECRET_KEY", raising=False)
    (tmp_path / "secret_key").write_text("kept-by-make-run\n")
    assert config.secret_key(debug=False) == "kept-by-make-run"
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    assert config.secret_key(debug=False) == "from-the-environment"


@pytest.mark.parametrize("raw", ["maybe", "2", "enabled", "tru"])
def test_bad_boolean_is_refused(monkeypatch, raw):
    monkeypatch.setenv("SOME_FLAG", raw)
    with pytest.raises(ConfigError) as caught:
        config.env_bool("SOME_FLAG", False)
    assert "SOME_FLAG" in str(caught.value) and repr(raw) in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("Yes", True), ("on", True), ("0", False), ("off", False),
     ("", False)],
)
def test_booleans(monkeypatch, raw, expected):
    monkeypatch.setenv("SOME_FLAG", raw)
    assert config.env_bool("SOME_FLAG", False) is expected


def test_bad_integer_is_refused(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_LEASE_SECONDS", "sixty")
    with pytest.raises(ConfigError, match="ORCHESTRATOR_LEASE_SECONDS"):
        config.env_int("ORCHESTRATOR_LEASE_SECONDS", 60)


def test_log_levels_are_read_by_name_or_refused(monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_RUN_LOG_LEVEL", " warning ")
    assert config.log_level("ORCHESTRATOR_RUN_LOG_LEVEL", "INFO") == "WARNING"
    monkeypatch.setenv("ORCHESTRATOR_RUN_LOG_LEVEL", "LOUD")
    with pytest.raises(ConfigError, match="ORCHESTRATOR_RUN_LOG_LEVEL='LOUD' is not a logging"):
        config.log_level("ORCHESTRATOR_RUN_LOG_LEVEL", "INFO")


def test_log_format_is_plain_or_json(monkeypatch):
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    assert config.env_choice("LOG_FORMAT", ("plain", "json"), "plain") == "json"
    monkeypatch.setenv("LOG_FORMAT", "xml")
    with pytest.raises(ConfigError, match="LOG_FORMAT='xml' is not one of: plain, json"):
        config.env_choice("LOG_FORMAT", ("plain", "json"), "plain")


def test_describe_url_host_never_shows_credentials():
    assert config.describe_url_host("postgres://user:secret@db.example.net:5432/x") == (
        "db.example.net:5432"
    )
    assert "secret" not in config.describe_url_host("amqp://guest:secret@mq:5672//")


# --- health checks, in process -------------------------------------------------------------


def test_broker_check_names_host_and_failure():
    port = closed_port()
    line = health.check_broker(f"redis://127.0.0.1:{port}/0", {})
    assert line == f"cannot reach broker at 127.0.0.1:{port}: connection refused"


def test_filesystem_broker_check(tmp_path):
    options = {"data_folder_in": str(tmp_path / "q"), "data_folder_out": str(tmp_path / "q")}
    assert health.check_broker("filesystem://", options) is None
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    line = health.check_broker("filesystem://", {"data_folder_in": str(blocker / "q")})
    assert line and line.startswith(f"cannot use broker folder {blocker / 'q'}")


def test_failure_descriptions():
    refused = ConnectionRefusedError(111, "Connection refused")
    assert health.describe_failure(refused) == "connection refused"
    wrapped = RuntimeError("Error 111 connecting to h:1. Connection refused.")
    assert health.describe_failure(wrapped) == "connection refused"
    assert health.describe_failure(socket.gaierror(-2, "Name or service not known")) == (
        "unknown host"
    )
    assert health.describe_failure(ValueError("first line\nsecond")) == "first line"


# --- the commands an operator runs ---------------------------------------------------------


def test_bad_setting_prints_one_line_and_no_traceback(tmp_path):
    result = run_manage(tmp_path, "check", DEBUG="maybe")
    assert_one_line(result, "configuration error", "DEBUG", "maybe")
    result = run_manage(tmp_path, "check", DATABASE_URL="mysql://u@db:3306/x")
    assert_one_line(result, "configuration error", "DATABASE_URL")


def test_debug_off_without_secret_key_refuses_to_start(tmp_path):
    result = run_manage(tmp_path, "check", SECRET_KEY=None)
    assert_one_line(result, "configuration error", "SECRET_KEY is not set")


PRODUCTION = {  # what docs/deploying.md asks for, on one HTTPS host behind a TLS proxy
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "orchestrator.example.net",
    "CSRF_TRUSTED_ORIGINS": "https://orchestrator.example.net",
    "SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto",
}


def test_check_deploy_is_clean_with_production_settings(tmp_path):
    result = run_manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING", ORCHESTRATOR_HTTPS="true",
        **PRODUCTION,
    )
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert not result.stderr.strip(), result.stderr


def test_check_deploy_names_what_is_missing_without_https(tmp_path):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode != 0
    for check in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check in result.stderr, result.stderr


def test_the_proxy_ssl_header_is_a_header_name(monkeypatch):
    assert config.proxy_ssl_header("X-Forwarded-Proto") == ("HTTP_X_FORWARDED_PROTO", "https")
    assert config.proxy_ssl_header(" ") is None and config.proxy_ssl_header(None) is None
    with pytest.raises(ConfigError, match="SECURE_PROXY_SSL_HEADER"):
        config.proxy_ssl_header("X-Forwarded-Proto: https")


def test_https_behind_a_tls_proxy_redirects_plain_http_and_sends_hsts(client, db):
    with override_settings(
        SECURE_SSL_REDIRECT=True, SECURE_HSTS_SECONDS=3600,
        SECURE_PROXY_SSL_HEADER=config.proxy_ssl_header("X-Forwarded-Proto"),
    ):
        plain = client.get("/login/")
        assert plain.status_code == 301 and plain["Location"] == "https://testserver/login/"
        secure = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
        assert secure.status_code == 200
        assert secure["Strict-Transport-Security"].startswith("max-age=3600")


def test_check_services_with_unreachable_database(tmp_path):
    port = closed_port()
    result = run_manage(tmp_path, "check_services", DATABASE_URL=f"postgres://u@127.0.0.1:{port}/x")
    line = assert_one_line(result, f"127.0.0.1:{port}", "database")
    assert line == f"cannot reach database at 127.0.0.1:{port}: connection refused"


def test_check_services_with_unreachable_broker(tmp_path):
    port = closed_port()
    result = run_manage(
        tmp_path, "check_services", CELERY_BROKER_URL=f"redis://127.0.0.1:{port}/0"
    )
    line = assert_one_line(result, f"127.0.0.1:{port}", "broker")
    assert line == f"cannot reach broker at 127.0.0.1:{port}: connection refused"


def test_check_services_passes_on_the_embedded_defaults(tmp_path):
    result = run_manage(tmp_path, "check_services")
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


def test_migrate_with_unreachable_database_prints_one_line(tmp_path):
    port = closed_port()
    result = run_manage(tmp_path, "migrate", DATABASE_URL=f"postgres://u@127.0.0.1:{port}/x")
    assert_one_line(result, f"127.0.0.1:{port}", "database")


def test_celery_with_bad_broker_scheme_prints_one_line(tmp_path):
    env = {
        key: value for key, value in os.environ.items() if key not in ("DATABASE_URL",)
    }
    env.update(
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        ORCHESTRATOR_VAR_DIR=str(tmp_path / "var"),
        SECRET_KEY="a-test-secret-key",
        CELERY_BROKER_URL="kafka://127.0.0.1:9092",
        PYTHONPATH=str(ROOT),
    )
    celery = Path(sys.executable).with_name("celery")
    result = subprocess.run(
        [str(celery), "-A", "orchestrator", "inspect", "ping"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert_one_line(result, "configuration error", "CELERY_BROKER_URL")


BUILT_IN_WORKFLOWS = {
    "modify_note", "task_clean_up_tasks", "task_resume_workflows", "task_validate_products",
    "blueprint_execution", "blueprint_teardown",
}


def registered_workflows(tmp_path: Path, modules: str) -> set[str]:
    result = run_manage(
        tmp_path, "shell", "-v", "0", "-c",
        "from orchestrator import registry; "
        "print(' '.join(d.name for d in registry.all_definitions()))",
        ORCHESTRATOR_WORKFLOW_MODULES=modules,
    )
    assert result.returncode == 0, result.stderr
    return set(result.stdout.split())


def test_the_built_in_workflows_stay_registered_beside_the_users_own_modules(tmp_path):
    names = registered_workflows(tmp_path, "tests.workflows")
    assert BUILT_IN_WORKFLOWS <= names
    assert "wf_counted" in names
    assert "task_demo" not in names and "create_node" not in names  # the demos: user modules
    assert registered_workflows(tmp_path, "") == BUILT_IN_WORKFLOWS
    # An old setting that still names the built-in modules registers them once, as before.
    old_setting = "orchestrator.builtin_workflows,subscriptions.workflows,tests.workflows"
    assert registered_workflows(tmp_path, old_setting) == names


def test_the_embedded_sqlite_file_and_its_wal_and_shm_are_owner_only(tmp_path):
    """They hold login sessions, API token digests and encrypted secrets: 0600 like the
    secret key, whatever the umask; an older, readable file is tightened."""
    write_and_show_modes = (
        "import os; from django.db import connection; "
        "connection.cursor().execute('CREATE TABLE IF NOT EXISTS t (x int)'); "
        "name = connection.settings_dict['NAME']; "
        "print(' '.join(oct(os.stat(name + end).st_mode & 0o777) for end in ('', '-wal', '-shm')))"
    )
    result = run_manage(tmp_path, "shell", "-v", "0", "-c", write_and_show_modes, umask=0o022)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0o600"] * 3  # while open: the database, -wal and -shm
    assert oct((tmp_path / "var").stat().st_mode & 0o777) == "0o700"
    database = tmp_path / "var" / "orchestrator.sqlite3"
    os.chmod(database, 0o644)
    result = run_manage(tmp_path, "shell", "-v", "0", "-c", write_and_show_modes, umask=0o022)
    assert result.stdout.split() == ["0o600"] * 3
