"""Several machines on one: the layout of docs/deploying.md, each process standing in for a
machine, so the deployment guide is tried for real (and by tests/integration/
test_multi_machine.py in CI).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/orchestrator \\
        python deploy/multi_machine.py [--port 8080] [--broker redis|rabbitmq] [--var DIR]

It starts, each in a process of its own, with its output in <var>/logs/<name>.log:

- the broker: a private `redis-server` (or, with `--broker rabbitmq`, a private
  `rabbitmq-server`) on a free port, unless CELERY_BROKER_URL names one already running;
- PostgreSQL is the one DATABASE_URL names (the "database machine"); when it does not answer
  on this machine, the machine's cluster is started with `pg_ctlcluster`, as CI does;
- the release steps, once: `check_services`, `migrate`, `migrate_workflows --apply`;
- two web servers (`gunicorn --reuse-port`): two independent gunicorn masters bound to the
  same port, the kernel spreading connections over them as a load balancer would; stopping
  one leaves the other answering on the port;
- workers per queue with their own node names: `core-a` and `core-b` on `core`, `user` on
  `user`, `internal` on `internal` (the recovery sweep and the engine's tasks);
- exactly one celery-beat.

It prints the URL and waits; Ctrl-C (or SIGTERM) stops everything, the broker last. When a
process dies on its own the others are stopped too, as `make run` does.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.embedded import (  # noqa: E402 - after the checkout is importable
    Child,
    Stop,
    _raise_stop,
    ensure_secret_key,
    stop_all,
    supervise,
)

# Queue -> the workers serving it (node names); two on `core`, so one can stop.
WORKERS = {"core-a": "core", "core-b": "core", "user": "user", "internal": "internal"}
WEB_SERVERS = ("web-1", "web-2")
READY_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float, child: Child) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise RuntimeError(f"{child.name} exited: see {child.log}")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"nothing answers on 127.0.0.1:{port} after {timeout:.0f}s")


def hand_to_rabbitmq_user(var: Path, base: Path) -> None:
    """Started as root, `rabbitmq-server` runs as the `rabbitmq` user: its folders are that
    user's, and the folder above them lets it through (its other files stay private)."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam("rabbitmq")
    except KeyError:
        return
    var.chmod(0o711)
    for path in (base, *base.rglob("*")):
        shutil.chown(path, "rabbitmq", "rabbitmq")


class Layout:
    """The processes of the layout; `start()` brings them up and waits until they serve."""

    def __init__(
        self, var: Path, port: int, broker: str = "redis", env: dict[str, str] | None = None,
        release: bool = True,
    ) -> None:
        self.var, self.port, self.broker, self.release = var, port, broker, release
        self.env = dict(os.environ if env is None else env)
        self.logs = var / "logs"
        self.children: dict[str, Child] = {}
        self.broker_child: Child | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    # --- start ------------------------------------------------------------------------------

    def start(self) -> None:
        self.var.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.env.setdefault("SECRET_KEY", ensure_secret_key(self.var))
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.env.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
        self.ensure_postgres()
        if not self.env.get("CELERY_BROKER_URL"):
            self.env["CELERY_BROKER_URL"] = self.start_broker()
        if self.release:
            for arguments in (("check_services",), ("migrate", "--no-input", "-v", "0"),
                              ("migrate_workflows", "--apply")):
                self.manage(*arguments)
        for child in self.processes():
            self.launch(child)
        self.wait_until_serving()

    def ensure_postgres(self) -> None:
        url = self.env.get("DATABASE_URL", "")
        if not url.startswith(("postgres://", "postgresql://")):
            raise RuntimeError("set DATABASE_URL to a PostgreSQL database (docs/deploying.md)")
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", str(parts.port or 5432)
        ready = ["pg_isready", "-q", "-h", host, "-p", port]
        if subprocess.run(ready, check=False).returncode == 0:
            return
        clusters = Path("/etc/postgresql")
        if host not in ("127.0.0.1", "localhost") or not shutil.which("pg_ctlcluster") or (
            not clusters.exists()
        ):
            raise RuntimeError(f"PostgreSQL at {host}:{port} does not answer")
        version = sorted(path.name for path in clusters.iterdir())[-1]
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       check=True)

    def start_broker(self) -> str:
        port = free_port()
        if self.broker == "redis":
            command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                       "--save", "", "--appendonly", "no", "--dir", str(self.var)]
            url = f"redis://127.0.0.1:{port}/0"
        elif self.broker == "rabbitmq":
            command = ["rabbitmq-server"]
            base = self.var / "rabbitmq"
            for folder in ("mnesia", "log"):
                (base / folder).mkdir(parents=True, exist_ok=True)
            plugins = base / "enabled_plugins"
            plugins.write_text("[].\n")
            # Its own configuration, not the machine's (/etc/rabbitmq): only its port.
            (base / "rabbitmq.conf").write_text(f"listeners.tcp.local = 127.0.0.1:{port}\n")
            (base / "rabbitmq-env.conf").write_text("")
            hand_to_rabbitmq_user(self.var, base)
            self.env.update(
                RABBITMQ_NODENAME=f"orchestrator-{port}@localhost",
                RABBITMQ_DIST_PORT=str(free_port()), RABBITMQ_MNESIA_BASE=str(base / "mnesia"),
                RABBITMQ_LOG_BASE=str(base / "log"), RABBITMQ_ENABLED_PLUGINS_FILE=str(plugins),
                RABBITMQ_CONFIG_FILE=str(base / "rabbitmq.conf"),
                RABBITMQ_CONF_ENV_FILE=str(base / "rabbitmq-env.conf"),
                ERL_CRASH_DUMP=str(base / "erl_crash.dump"),
            )
            url = f"amqp://guest:guest@127.0.0.1:{port}//"
        else:
            raise RuntimeError(f"unknown broker {self.broker!r} (redis or rabbitmq)")
        if not shutil.which(command[0]):
            raise RuntimeError(f"{command[0]} is not installed; set CELERY_BROKER_URL instead")
        self.broker_child = Child(f"broker-{self.broker}", command, log=self.log(self.broker))
        self.start_child(self.broker_child)
        wait_for_port(port, timeout=60, child=self.broker_child)
        return url

    def processes(self) -> list[Child]:
        python = sys.executable
        webs = [
            Child(name, [python, "-m", "gunicorn", "orchestrator.wsgi",
                         "--bind", f"127.0.0.1:{self.port}", "--reuse-port",
                         "--workers", "1", "--threads", "4", "--graceful-timeout", "10",
                         "--access-logfile", "-", "--name", name])
            for name in WEB_SERVERS
        ]
        workers = [
            Child(name, [python, "-m", "celery", "-A", "orchestrator", "worker", "-Q", queue,
                         "-n", f"{name}@%h", "--pool", "threads", "--concurrency", "2",
                         "--without-gossip", "--without-mingle", "--without-heartbeat",
                         "--loglevel", "INFO"])
            for name, queue in WORKERS.items()
        ]
        beat = Child("beat", [python, "-m", "celery", "-A", "orchestrator", "beat",
                              "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler",
                              "--schedule", str(self.var / "celerybeat-schedule"),
                              "--pidfile", str(self.var / "celerybeat.pid"),
                              "--loglevel", "INFO"])
        return [*webs, *workers, beat]

    def manage(self, *arguments: str) -> None:
        result = subprocess.run(  # noqa: S603 - our own interpreter and manage.py
            [sys.executable, str(ROOT / "manage.py"), *arguments], cwd=ROOT, env=self.env,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(arguments)} failed ({result.returncode})")

    def launch(self, child: Child) -> None:
        child.log = self.log(child.name)
        self.start_child(child)
        self.children[child.name] = child

    @contextmanager
    def environment(self) -> Iterator[None]:
        """Children inherit the launcher's environment (embedded.Child): the layout's own."""
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(self.env)
        try:
            yield
        finally:
            os.environ.clear()
            os.environ.update(saved)

    def start_child(self, child: Child) -> None:
        with self.environment():
            child.start()

    def wait_until_serving(self) -> None:
        """Every web server answers /healthz with 200 and every worker and beat said ready."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        waiting = {*WORKERS, "beat", "web"}
        while waiting and time.monotonic() < deadline:
            for name, child in self.children.items():
                if not child.running():
                    raise RuntimeError(f"{name} exited: see {self.log(name)}")
            for name in [*WORKERS]:
                if name in waiting and " ready." in self.log(name).read_text(errors="replace"):
                    waiting.discard(name)
            if "beat" in waiting and "beat: Starting" in self.log("beat").read_text(
                errors="replace"
            ):
                waiting.discard("beat")
            if "web" in waiting and all(
                "Booting worker" in self.log(name).read_text(errors="replace")
                for name in WEB_SERVERS
            ) and healthz(self.url) == 200:
                waiting.discard("web")
            time.sleep(0.3)
        if waiting:
            raise RuntimeError(f"not ready after {READY_TIMEOUT_SECONDS}s: {sorted(waiting)}")

    # --- stop -------------------------------------------------------------------------------

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop one process (SIGTERM: a warm shutdown; SIGKILL: a machine that died)."""
        child = self.children[name]
        if child.running():
            child.process.send_signal(sig)
            child.process.wait(timeout=30)

    def stop_all(self) -> None:
        stop_all(list(self.children.values()))
        if self.broker_child is not None:
            stop_all([self.broker_child])


def healthz(url: str) -> int | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8080, help="the one web port (8080)")
    parser.add_argument("--broker", choices=("redis", "rabbitmq"), default="redis",
                        help="the broker to start when CELERY_BROKER_URL is not set")
    parser.add_argument("--var", type=Path, help="logs and the broker's files (a temp folder)")
    arguments = parser.parse_args()
    var = arguments.var or Path(tempfile.mkdtemp(prefix="orchestrator-layout-"))
    layout = Layout(var, arguments.port, arguments.broker)
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    status = 0
    try:
        layout.start()
        print(f"\nlayout running at {layout.url}/ (web-1, web-2 on one port; workers "
              f"{', '.join(WORKERS)}; beat; logs in {layout.logs}). Ctrl-C stops it.\n",
              flush=True)
        status = supervise([*layout.children.values()])
    except (Stop, KeyboardInterrupt):
        print("\nstopping the layout...", flush=True)
    except RuntimeError as error:
        print(f"layout: {error}", file=sys.stderr, flush=True)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        layout.stop_all()
    return status


if __name__ == "__main__":
    sys.exit(main())
