"""Real uvicorn servers running the project's ASGI app, for tests that need real HTTP (streaming
without a test client's buffering, several processes, signals). The one place tests start one.

* `LiveServer`: in a background thread of the test process. It shares the test's settings and
  database, so the test's `settings` changes and stand-ins apply. Used by `live_server_url`.
* `ServerProcess`: `python -m uvicorn` in its own process with exactly the environment it is given
  (`production_env(...)`), for what a thread cannot give: several workers sharing one cache,
  SIGTERM, production settings, a database the test process does not use.

    with ServerProcess(production_env(DATABASE_URL=database_url_for_subprocess())) as server:
        httpx.get(f"{server.url}/healthz")
        server.terminate()          # SIGTERM, then wait for the exit (bounded)

`free_port()` is the tests' (and the benchmark's) only way to pick a port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import uvicorn

__all__ = [
    "BASE_DIR",
    "LiveServer",
    "ServerProcess",
    "database_url_for_subprocess",
    "free_port",
    "production_env",
    "standin_server_env",
]

BASE_DIR = Path(__file__).resolve().parent.parent
ASGI_APP = "chatbackend.asgi:application"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listened on a moment ago (for a server in another
    process, which must bind it itself; `LiveServer` binds its socket first and has no race)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- In a thread ----------------------------------------------------------------------------------


class _SignallingServer(uvicorn.Server):
    """uvicorn's Server that tells the starting thread when it listens (or gave up starting)."""

    def __init__(self, config: uvicorn.Config):
        super().__init__(config)
        self.settled = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets)
        finally:
            # Set on success (uvicorn has set `started`) and on failure (it raises SystemExit).
            self.settled.set()


class LiveServer:
    """The ASGI app on a socket bound here (no port race), served by uvicorn in a daemon thread.
    `lifespan="on"` runs the apps' start-up and shutdown hooks (core.lifecycle) as a real
    process would; off by default, since those hooks outlive one test's database."""

    def __init__(
        self, app: str = ASGI_APP, *, lifespan: str = "off", startup_timeout_s: float = 10
    ):
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout_s = startup_timeout_s
        config = uvicorn.Config(app, log_level="warning", lifespan=lifespan)
        self.server = _SignallingServer(config)
        self.thread = threading.Thread(target=self._run, name=f"uvicorn-{self.port}", daemon=True)

    def _run(self) -> None:
        try:
            self.server.run(sockets=[self.socket])
        finally:
            self.server.settled.set()  # ended before or after starting: never leave __enter__ hung

    def __enter__(self) -> LiveServer:
        self.thread.start()
        settled = self.server.settled.wait(self.startup_timeout_s)
        if not self.server.started:
            self.__exit__()
            if settled:
                raise RuntimeError("uvicorn gave up starting: its error is in the log above")
            raise RuntimeError(f"uvicorn did not start within {self.startup_timeout_s}s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


# --- In a process ---------------------------------------------------------------------------------

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


def standin_server_env(standin_url: str, **overrides: str) -> dict[str, str]:
    """`production_env` for a server process that uses the test's database and asks the Gemini
    stand-in at `standin_url` (no retries; titles from `TITLE_MODEL`). Skips (fails under
    CI=true) when another process cannot reach the test database."""
    from tests.fixtures_gemini import TITLE_MODEL
    from tests.require import require

    database_url = database_url_for_subprocess()
    require(database_url, "the test database is in memory: another process cannot use it")
    return production_env(
        DATABASE_URL=database_url,
        AI_PROVIDER="gemini",
        GEMINI_API_KEY="test-key",
        GEMINI_BASE_URL=standin_url,
        GEMINI_MAX_RETRIES="0",
        CHAT_TITLE_MODEL=TITLE_MODEL,
        **overrides,
    )


class ServerProcess:
    """`python -m uvicorn <app>` on a free port with exactly `env` as its environment. Ready once
    `/healthz` answers 200 (polled with a deadline: another process cannot signal this one). Its
    output goes to a log file, shown in the error when it fails to start; `log()` reads it."""

    def __init__(
        self,
        env: dict[str, str],
        *,
        app: str = ASGI_APP,
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
                    log = self.log()  # before stop() removes the file
                    self.stop()
                    raise RuntimeError(
                        f"uvicorn did not answer /healthz in {self.startup_timeout_s}s:\n{log}"
                    )
                time.sleep(0.05)  # the interval between readiness probes, bounded by the deadline

    def accepts_connections(self) -> bool:
        """Whether something listens on the server's port (uvicorn stops listening as soon as
        it begins a graceful shutdown)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

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
