"""Probes, static files and production settings, checked on real processes."""

import json
import secrets
import socket
import subprocess
import sys
import time

import httpx
import pytest
from django.core.cache import cache
from django.test import Client

from chatbackend import health
from tests.live_server import BASE_DIR, ServerProcess, free_port, production_env


def manage(*args: str, env: dict[str, str], timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# --- Probes -------------------------------------------------------------------------------------


def test_healthz_says_which_provider(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "provider": "offline"}


@pytest.mark.django_db
def test_readyz_when_database_and_cache_answer(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "provider": "offline",
        "database": "ok",
        "cache": "ok",
    }


@pytest.fixture
def silent_database_port():
    """A port where a "database" accepts TCP connections (the kernel completes the handshake into
    the listen backlog) and never says a word: a PostgreSQL client waits there until its own
    timeout, as it does on a hung or overloaded server."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as listener:
        yield listener.getsockname()[1]


def test_readyz_answers_503_in_time_when_the_database_hangs(silent_database_port):
    env = production_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{silent_database_port}/hangs",
        # The pool waits longer than the probe may. (Not much longer: start-up waits this long
        # too, for the liveness sweep's connection, before uvicorn listens.)
        DB_POOL_TIMEOUT_S=str(health.READY_TIMEOUT_S * 3),
    )
    with ServerProcess(env) as server:
        started = time.monotonic()
        # The client gives up after READY_TIMEOUT_S plus a margin for the round trip.
        ready = httpx.get(f"{server.url}/readyz", timeout=health.READY_TIMEOUT_S + 2)
        elapsed = time.monotonic() - started

    assert ready.status_code == 503
    assert ready.json() == {
        "status": "unavailable",
        "provider": "offline",
        "database": "unavailable",
        "cache": "ok",
    }
    # Not answered before the database check's bound either: it did wait for the database, and
    # gave up at its own bound, not the pool's.
    assert health.READY_TIMEOUT_S * 0.9 <= elapsed < health.READY_TIMEOUT_S * 3


@pytest.mark.django_db
def test_readyz_is_503_when_the_cache_fails(client, monkeypatch):
    async def broken(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(cache, "aset", broken)
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert response.json()["cache"] == "unavailable"
    assert response.json()["database"] == "ok"


def test_readyz_is_503_json_when_the_database_is_unreachable():
    closed_port = free_port()  # nothing listens there
    env = production_env(
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port}/nowhere",
        DB_POOL_TIMEOUT_S="1",
    )
    with ServerProcess(env) as server:
        alive = httpx.get(f"{server.url}/healthz", timeout=10)
        ready = httpx.get(f"{server.url}/readyz", timeout=10)

    assert alive.status_code == 200
    assert ready.status_code == 503
    assert ready.headers["content-type"] == "application/json"
    assert ready.json() == {
        "status": "unavailable",
        "provider": "offline",
        "database": "unavailable",
        "cache": "ok",
    }


# --- Static files -------------------------------------------------------------------------------


def test_admin_static_files_are_served_by_uvicorn(live_server_url):
    response = httpx.get(f"{live_server_url}/static/admin/css/base.css", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/css")
    assert "body" in response.text


def test_collected_static_files_are_served_with_debug_off(tmp_path):
    env = production_env(
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
    )
    collected = manage("collectstatic", "--noinput", env=env)
    assert collected.returncode == 0, collected.stderr
    manifest = json.loads((tmp_path / "static" / "staticfiles.json").read_text())
    hashed = manifest["paths"]["admin/css/base.css"]

    with ServerProcess(env) as server:
        plain = httpx.get(f"{server.url}/static/admin/css/base.css", timeout=10)
        versioned = httpx.get(
            f"{server.url}/static/{hashed}", headers={"Accept-Encoding": "gzip"}, timeout=10
        )
        admin = httpx.get(f"{server.url}/admin/login/", timeout=10)

    assert plain.status_code == 200
    assert versioned.status_code == 200
    assert "immutable" in versioned.headers["cache-control"]
    assert versioned.headers.get("content-encoding") == "gzip"
    assert "sorting-icons" in plain.text
    # The admin's pages link the hashed names (the manifest storage is in use).
    assert f"/static/{hashed}" in admin.text


# --- Production settings ------------------------------------------------------------------------


def deploy_env(**overrides: str) -> dict[str, str]:
    env = production_env(**overrides)
    del env["DJANGO_SECURE_SSL_REDIRECT"]  # production default: on
    return env


def test_check_deploy_is_clean_with_production_settings():
    env = deploy_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="example.com",
    )
    result = manage("check", "--deploy", env=env)

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_refuses_to_start_with_debug_off_and_no_secret():
    env = deploy_env(DJANGO_DEBUG="0")
    del env["DJANGO_SECRET_KEY"]

    result = manage("check", env=env)
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr

    with pytest.raises(RuntimeError, match="DJANGO_SECRET_KEY must be set"):
        ServerProcess(env).start()


def test_check_deploy_still_sees_what_our_on_loop_middleware_stands_for():
    """Security, Csrf and XFrameOptions are Django's classes with their hooks on the event loop:
    Django's deploy checks, which look for its own paths, still run for them."""
    env = production_env(
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="example.com",
        DJANGO_HSTS_SECONDS="0",
        DJANGO_SECURE_SSL_REDIRECT="0",
    )
    result = manage("check", "--deploy", env=env)

    output = result.stdout + result.stderr
    assert "chatbackend.security.W004" in output  # no HSTS
    assert "chatbackend.security.W008" in output  # no SSL redirect
    assert "security.W001" not in output.replace("chatbackend.security", "")


@pytest.mark.parametrize(
    ("value", "thresholds"),
    [(None, [50000, 20, 10]), ("", [700, 10, 10]), ("900,5,5", [900, 5, 5])],
)
def test_the_served_process_collects_garbage_as_configured(value, thresholds):
    """The process uvicorn serves from (chatbackend.asgi loaded) has frozen its start-up objects
    and uses GC_THRESHOLDS (empty: Python's own)."""
    env = production_env(DJANGO_SECRET_KEY=secrets.token_urlsafe(50), DJANGO_DEBUG="0")
    if value is not None:
        env["GC_THRESHOLDS"] = value
    script = (
        "import gc, json, chatbackend.asgi; "
        "print(json.dumps([list(gc.get_threshold()), gc.get_freeze_count()]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    got, frozen = json.loads(result.stdout.splitlines()[-1])
    assert got == thresholds
    assert frozen > 50_000  # Django, the apps and the SDK, out of every collection
