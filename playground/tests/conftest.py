"""Fixtures for the browser tests: a real uvicorn server in a subprocess and headless Chromium.

The browser tests skip (with how to enable them) where Chromium or the playwright package is
missing; they never download a browser."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(settings.BASE_DIR) / "test-artifacts"

try:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=15_000)
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def browser_missing() -> str | None:
    if sync_playwright is None:
        return (
            "the playwright package is missing: pip install -r requirements-dev.txt, "
            "and install Chromium: apt-get install -y chromium"
        )
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: install Chromium: apt-get install -y chromium"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_healthy(url: str, server: subprocess.Popen, log: Path, timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"uvicorn exited with {server.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)  # polling interval, bounded by the deadline
    raise RuntimeError(f"uvicorn did not answer /healthz within {timeout_s}s:\n{log.read_text()}")


@pytest.fixture(scope="session")
def server_url(tmp_path_factory):
    """The project served by uvicorn on a free port, with its own SQLite database and the offline
    model streaming slowly enough (40 ms a chunk) for a test to watch a reply grow."""
    if reason := browser_missing():
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("playground-server")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbackend.settings_test",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "AI_PROVIDER": "offline",
        "OFFLINE_CHUNK_DELAY_MS": "40",
        "CHAT_RATE_LIMIT": "1000/m",
        "AGENT_RATE_LIMIT": "1000/m",
    }
    root = settings.BASE_DIR
    manage = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(manage, cwd=root, env=env, check=True, capture_output=True, timeout=120)
    port = _free_port()
    log = workdir / "uvicorn.log"
    command = [sys.executable, "-m", "uvicorn", "chatbackend.asgi:application", "--port", str(port)]
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def chromium():
    """Module-scoped: Playwright's sync API keeps an event loop current while it is open, which
    would break later async tests in the same process."""
    if reason := browser_missing():
        pytest.skip(reason)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Console errors and uncaught exceptions of the page; each test asserts there are none."""
    return []


@pytest.fixture
def page(chromium, server_url, console_errors):
    context = chromium.new_context(
        base_url=server_url,
        viewport={"width": 1280, "height": 800},
        reduced_motion="reduce",  # no sliding drawer mid-way in a screenshot
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    page.on("pageerror", lambda error: console_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored), for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
