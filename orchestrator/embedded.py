"""The embedded launcher: `python -m orchestrator.embedded` (what `make run` runs).

On the embedded defaults (an SQLite file and kombu's `filesystem://` broker under var/,
unless DATABASE_URL / CELERY_BROKER_URL say otherwise) it:

1. makes var/ and keeps a random SECRET_KEY in var/secret_key (mode 600) unless SECRET_KEY
   is set, and exports it to everything it starts;
2. checks the database and the broker (`manage.py check_services`): a problem ends it with
   one line naming the host and what failed;
3. runs `migrate`, `migrate_workflows --apply`, `load_demo_data` and `ensure_admin` (which
   prints the admin login);
4. starts the web server (gunicorn), a Celery worker and celery-beat as child processes,
   prints the URL, and on Ctrl-C or SIGTERM stops them all. When a child dies on its own,
   the others are stopped and the launcher exits non-zero.

Environment: PORT (default 8000), HOST (default 127.0.0.1), WEB_THREADS (4),
WORKER_CONCURRENCY (4), ORCHESTRATOR_VAR_DIR, and everything settings.py reads.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
STOP_TIMEOUT_SECONDS = 20


def var_dir() -> Path:
    return Path(os.environ.get("ORCHESTRATOR_VAR_DIR") or BASE_DIR / "var").resolve()


def ensure_secret_key(folder: Path) -> str:
    """SECRET_KEY from the environment, else the one kept in var/secret_key (made once)."""
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    path = folder / "secret_key"
    if path.exists():
        key = path.read_text().strip()
        if key:
            os.chmod(path, 0o600)
            return key
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    os.chmod(path, 0o600)
    return key


def _die_with_parent() -> None:
    """In a child, before exec: get SIGTERM if the launcher itself is killed (Linux only)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def manage(*arguments: str) -> None:
    """Run one `manage.py` command; its failure (already printed as one line) ends the launcher."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
        [sys.executable, str(BASE_DIR / "manage.py"), *arguments], cwd=BASE_DIR, check=False
    )
    if result.returncode != 0:
        sys.exit(result.returncode or 1)


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen | None = None
    log: Path | None = None  # its output goes there instead of the launcher's terminal

    def start(self) -> None:
        output = open(self.log, "ab") if self.log else None  # noqa: SIM115 - the child's
        try:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and tools
                self.command, cwd=BASE_DIR, preexec_fn=_die_with_parent,
                stdout=output, stderr=subprocess.STDOUT if output else None,
            )
        finally:
            if output:
                output.close()  # the child holds its own copy

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def children(folder: Path) -> list[Child]:
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    threads = os.environ.get("WEB_THREADS", "4")
    concurrency = os.environ.get("WORKER_CONCURRENCY", "4")
    python = sys.executable
    return [
        Child(
            "web",
            [
                python, "-m", "gunicorn", "orchestrator.wsgi",
                "--bind", f"{host}:{port}", "--threads", threads,
                "--graceful-timeout", "10", "--access-logfile", "-",
            ],
        ),
        Child(
            "worker",
            [
                python, "-m", "celery", "-A", "orchestrator", "worker",
                "-Q", "core,user,internal", "--pool", "threads", "--concurrency", concurrency,
                "--without-gossip", "--without-mingle", "--without-heartbeat",
                "--loglevel", "INFO", "-n", "embedded@%h",
            ],
        ),
        Child(
            "beat",
            [
                python, "-m", "celery", "-A", "orchestrator", "beat",
                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                "--pidfile", str(folder / "celerybeat.pid"),
                "--schedule", str(folder / "celerybeat-schedule"),
                "--loglevel", "INFO",
            ],
        ),
    ]


class Stop(Exception):
    """Ctrl-C or SIGTERM reached the launcher."""


def _raise_stop(signum, frame) -> None:
    raise Stop(signal.Signals(signum).name)


def stop_all(running: list[Child]) -> None:
    """SIGTERM every child still running, wait for them, SIGKILL the ones that hang."""
    for child in running:
        if child.running():
            try:
                child.process.terminate()
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for child in running:
        if child.process is None:
            continue
        try:
            child.process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            print(f"{child.name} did not stop in {STOP_TIMEOUT_SECONDS}s: killing it", flush=True)
            child.process.kill()
            child.process.wait()


def supervise(running: list[Child]) -> int:
    """Wait until a signal comes (0) or a child exits on its own (1)."""
    while True:
        for child in running:
            code = child.process.poll() if child.process else None
            if code is not None:
                print(
                    f"{child.name} exited unexpectedly (exit code {code}); stopping the others",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        time.sleep(0.5)


def main() -> int:
    folder = var_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # the database, key and broker
    (folder / "staticfiles").mkdir(exist_ok=True)  # STATIC_ROOT: whitenoise warns when missing
    os.environ["ORCHESTRATOR_VAR_DIR"] = str(folder)
    os.environ["SECRET_KEY"] = ensure_secret_key(folder)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    running: list[Child] = []
    try:
        manage("check_services")
        manage("migrate", "--no-input", "-v", "1")
        manage("migrate_workflows", "--apply")
        manage("load_demo_data")
        manage("ensure_admin")
        for child in children(folder):
            child.start()
            running.append(child)
        host = os.environ.get("HOST", "127.0.0.1")
        port = os.environ.get("PORT", "8000")
        print(
            f"\nOrchestrator running at http://{host}:{port}/ "
            "(web server, Celery worker and celery-beat; Ctrl-C stops them all)\n",
            flush=True,
        )
        status = supervise(running)
    except (Stop, KeyboardInterrupt):
        print("\nstopping the web server, the worker and celery-beat...", flush=True)
        status = 0
    finally:
        # A second Ctrl-C while stopping must not leave children behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(running)
    if status == 0:
        print("stopped", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
