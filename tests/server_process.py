"""A real uvicorn server in its own process, for tests that need what a thread cannot give: several
workers sharing one cache, SIGTERM, production settings, a database the test process does not use.

    with ServerProcess(production_env(DATABASE_URL=database_url_for_subprocess())) as server:
        httpx.get(f"{server.url}/healthz")
        server.terminate()          # SIGTERM, then wait for the exit (bounded)

The server is ready once `/healthz` answers (bounded polling). Its output goes to a log file,
shown in the error when it fails to start; `server.log()` reads it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

from tests.live_server import free_port

BASE_DIR = Path(__file__).resolve().parent.parent

#: What a production-like process needs besides the variables a test passes.
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "chatbackend.settings",
    "DJANGO_DEBUG": "0",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "0",
    "AI_PROVIDER": "offline",
    "OFFLINE_CHUNK_DELAY_MS": "0",
    "CHAT_RATE_LIMIT": "0",
    "AGENT_RATE_LIMIT": "0",
    "LOG_LEVEL": "INFO",
    "PYTHONUNBUFFERED": "1",
}
#: Inherited from the test's environment (nothing else is: DATABASE_URL, REDIS_URL, keys... are
#: passed explicitly by each test).
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")


def production_env(**overrides: str) -> dict[str, str]:
    """The environment of a production-like server process: DEBUG off, the offline provider, no
    rate limits, no DATABASE_URL/REDIS_URL unless given. Its secret is the test's, so that tokens
    made in the test (`conftest.bearer`) are valid there."""
    from django.conf import settings

    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.update(PRODUCTION_ENV)
    env["DJANGO_SECRET_KEY"] = settings.SECRET_KEY
    env.update({name: str(value) for name, value in overrides.items()})
    return env


def database_url_for_subprocess() -> str | None:
    """A DATABASE_URL for the database the running test uses (pytest-django's test database), or
    None when another process cannot reach it (an in-memory SQLite database)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        if not name or name == ":memory:" or "mode=memory" in name:
            return None
        return f"sqlite:///{name}"
    if db["ENGINE"] == "django.db.backends.postgresql":
        user = quote(db.get("USER") or "", safe="")
        password = quote(db.get("PASSWORD") or "", safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{db['NAME']}"
    return None


class ServerProcess:
    """`python -m uvicorn <app>` on a free port with exactly `env` as its environment."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str = "chatbackend.asgi:application",
        graceful_timeout_s: float = 5,
        startup_timeout_s: float = 30,
        extra_args: tuple[str, ...] = (),
    ):
        self.env = env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        self.args = [
            sys.executable,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--timeout-graceful-shutdown",
            str(graceful_timeout_s),
            "--log-level",
            "info",
            *extra_args,
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(prefix="uvicorn-", suffix=".log", delete=False)

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log(self) -> str:
        return Path(self._log.name).read_text(errors="replace")

    def start(self) -> ServerProcess:
        self.process = subprocess.Popen(
            self.args, env=self.env, cwd=BASE_DIR, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + self.startup_timeout_s
        with httpx.Client(timeout=2) as client:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"uvicorn exited at start-up:\n{self.log()}")
                try:
                    if client.get(f"{self.url}/healthz").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"uvicorn did not answer /healthz:\n{self.log()}")
                # Not synchronisation: the interval between readiness probes.
                time.sleep(0.05)

    def terminate(self, timeout_s: float = 30) -> int:
        """SIGTERM (what a container runtime sends), then wait for the exit. Killed if it takes
        longer than `timeout_s`. Returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            raise RuntimeError(f"uvicorn ignored SIGTERM for {timeout_s}s:\n{self.log()}") from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)
