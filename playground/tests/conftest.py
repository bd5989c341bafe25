"""Fixtures for the browser tests: a real uvicorn server in a subprocess and headless Chromium.

The browser tests skip (with how to enable them) where Chromium or the playwright package is
missing; they never download a browser."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.live_server import ServerProcess
from tests.require import require

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


def _serve(tmp_path_factory, *, chunk_delay_ms: int):
    """The project served by uvicorn on a free port, with its own SQLite database and media folder,
    and the offline model waiting `chunk_delay_ms` between chunks."""
    reason = browser_missing()
    require(reason is None, reason or "")
    workdir = tmp_path_factory.mktemp("playground-server")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "chatbackend.settings_test",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "DJANGO_MEDIA_ROOT": str(workdir / "media"),
        "AI_PROVIDER": "offline",
        "OFFLINE_CHUNK_DELAY_MS": str(chunk_delay_ms),
        "CHAT_RATE_LIMIT": "1000/m",
        "AGENT_RATE_LIMIT": "1000/m",
    }
    env.pop("REDIS_URL", None)  # one process: running replies are kept in its memory
    root = settings.BASE_DIR
    manage = [sys.executable, "manage.py", "migrate", "--noinput"]
    subprocess.run(manage, cwd=root, env=env, check=True, capture_output=True, timeout=120)
    return ServerProcess(env)


@pytest.fixture(scope="session")
def server_url(tmp_path_factory):
    """The offline model at 40 ms a chunk: slowly enough for a test to watch a reply grow."""
    with _serve(tmp_path_factory, chunk_delay_ms=40) as server:
        yield server.url


@pytest.fixture(scope="session")
def slow_server_url(tmp_path_factory):
    """The offline model at 150 ms a chunk (a reply takes about 10 s): time enough to reload the
    page, or open a second tab, while the reply is still being written."""
    with _serve(tmp_path_factory, chunk_delay_ms=150) as server:
        yield server.url


@pytest.fixture(scope="module")
def chromium():
    """Module-scoped: Playwright's sync API keeps an event loop current while it is open, which
    would break later async tests in the same process."""
    reason = browser_missing()
    require(reason is None, reason or "")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def console_errors() -> list[str]:
    """Console errors and uncaught exceptions of the page; each test asserts there are none."""
    return []


def _open_page(chromium, base_url: str, console_errors: list[str]):
    context = chromium.new_context(
        base_url=base_url,
        viewport={"width": 1280, "height": 800},
        reduced_motion="reduce",  # no sliding drawer mid-way in a screenshot
    )
    context.set_default_timeout(15_000)
    # Every tab of the context (a test may open a second one) reports its errors.
    context.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
    context.on("weberror", lambda error: console_errors.append(str(error.error)))
    return context.new_page()


@pytest.fixture
def page(chromium, server_url, console_errors):
    page = _open_page(chromium, server_url, console_errors)
    yield page
    page.context.close()


@pytest.fixture
def slow_page(chromium, slow_server_url, console_errors):
    """A page on the slow server (see slow_server_url)."""
    page = _open_page(chromium, slow_server_url, console_errors)
    yield page
    page.context.close()


@pytest.fixture
def artifacts() -> Path:
    """test-artifacts/ at the repository root (gitignored), for screenshots."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
