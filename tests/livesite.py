"""A console served the way it runs for real: gunicorn processes (and optionally an RQ worker) on a
database file or server that the test process shares, and a Redis the test may stop and start.

pytest-django's live_server runs in the test's process and, on SQLite, on an in-memory database with
one shared connection: it cannot show what concurrent processes do to a SQLite file.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from django.db import connection

BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
USERNAME = "live-owner"
PASSWORD = "live owner password 1"

_SETUP = f"""
from storage.services import storage_create_default
from tenants import services
from tenants.models import Membership
tenant = services.tenant_create(name="live")
user = services.user_create(username={USERNAME!r}, password={PASSWORD!r})
services.membership_add(tenant=tenant, user=user, role=Membership.Role.OWNER)
storage_create_default()
print(services.api_token_create(user=user)[1])
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def database_url(tmp_path: Path, sqlite_template: Path | None) -> str:
    """The database the served console uses: a copy of a migrated SQLite file, or, on PostgreSQL, the
    test database itself (the test must use `transaction=True` so that its rows are committed)."""
    if connection.vendor == "sqlite":
        target = tmp_path / "db.sqlite3"
        shutil.copy(sqlite_template, target)
        return f"sqlite:///{target}"
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def migrated_sqlite(directory: Path) -> Path:
    path = directory / "template.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}", "VAR_DIR": str(directory)}
    subprocess.run([PYTHON, "manage.py", "migrate", "-v", "0"], cwd=BASE_DIR, env=env, check=True)
    return path


class LiveConsole:
    def __init__(self, *, tmp_path: Path, db_url: str, redis_url: str, workers: int = 2, rq_worker=True):
        self.tmp_path = tmp_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_url,
            "VAR_DIR": str(tmp_path / "var"),
            "STORAGE_ROOT": str(tmp_path / "var" / "storage"),
            "STAGING_ROOT": str(tmp_path / "var" / "staging"),
            "DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECRET_KEY": "live-console-test-key",
            "SECURE_COOKIES": "0",
            "LOG_LEVEL": "WARNING",
        }
        self.env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        (tmp_path / "var" / "storage").mkdir(parents=True, exist_ok=True)
        (tmp_path / "var" / "staging").mkdir(parents=True, exist_ok=True)
        self.token = self.manage("shell", "-c", _SETUP).strip().splitlines()[-1]
        self.log = open(tmp_path / "console.log", "wb")  # noqa: SIM115 - closed in stop()
        self.processes = [self._gunicorn(self.port, workers)]
        if rq_worker:
            self.processes.append(
                subprocess.Popen(
                    [PYTHON, "manage.py", "rqworker", "imports", "convert", "default", "maintenance"],
                    cwd=BASE_DIR,
                    env=self.env,
                    stdout=self.log,
                    stderr=subprocess.STDOUT,
                )
            )
        try:
            self._wait_until_served()
        except BaseException:
            self.stop()  # never leave a server behind
            raise

    def _gunicorn(self, port: int, workers: int) -> subprocess.Popen:
        return subprocess.Popen(
            [
                PYTHON,
                "-m",
                "gunicorn",
                "imageconsole.wsgi",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                "8",
                "--timeout",
                "300",
                # The clients reuse their connections; with gunicorn's 2 s default an idle one can be
                # closed just as a client sends on it (a reset on the client's side, not an answer).
                "--keep-alive",
                "75",
            ],
            cwd=BASE_DIR,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def start_web(self, *, workers: int = 1) -> tuple[str, subprocess.Popen]:
        """Another gunicorn over the same database, Redis, storage and staging (a second web server of a
        production deployment), on its own port: (its URL, its process). stop() ends it too."""
        port = free_port()
        process = self._gunicorn(port, workers)
        self.processes.append(process)
        self._wait_until_served(f"http://127.0.0.1:{port}", process)
        return f"http://127.0.0.1:{port}", process

    def _wait_until_served(self, url: str | None = None, process: subprocess.Popen | None = None) -> None:
        url, process = url or self.url, process or self.processes[0]
        deadline = time.monotonic() + 120
        while True:
            try:
                requests.get(url + "/accounts/login/", timeout=60)
                return
            except requests.RequestException:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"gunicorn did not start:\n{self.output()}") from None
                time.sleep(0.2)

    def manage(self, *args) -> str:
        done = subprocess.run(
            [PYTHON, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def api(self) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = f"Token {self.token}"
        return session

    def browser_session(self) -> requests.Session:
        """A console session logged in through the login form, with its CSRF token at hand."""
        session = requests.Session()
        session.get(self.url + "/accounts/login/", timeout=30)
        session.post(
            self.url + "/accounts/login/",
            data={
                "username": USERNAME,
                "password": PASSWORD,
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": self.url + "/accounts/login/"},
            timeout=30,
        ).raise_for_status()
        session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
        session.headers["Referer"] = self.url + "/"
        return session

    def output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.tmp_path / "console.log").read_text(errors="replace")[-20000:]

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.log.close()
