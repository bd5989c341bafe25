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


@pytest.fixture(scope="session")
def server_url(tmp_path_factory):
    """The project served by uvicorn on a free port, with its own SQLite database and the offline
    model streaming slowly enough (40 ms a chunk) for a test to watch a reply grow."""
    reason = browser_missing()
    require(reason is None, reason or "")
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
    with ServerProcess(env) as server:
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
