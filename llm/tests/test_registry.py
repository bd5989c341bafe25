"""settings.LLM → llm.get_provider() / model_for() / backend_label(), and its system check."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest
from django.core.checks import run_checks

from llm import ChatMessage, TextDelta, backend_label, get_provider, model_for, warm_up
from llm.gemini import GeminiProvider
from llm.offline import OfflineProvider
from llm.registry import reset_providers
from llm.resilience import ResilientProvider

PROBE = """
import django, json
django.setup()
from django.conf import settings
import llm
print(json.dumps({
    "backend": settings.LLM["BACKEND"],
    "label": llm.backend_label(),
    "chat": llm.model_for("chat"),
    "fast": llm.model_for("fast"),
    "complex": llm.model_for("complex"),
    "fallback": settings.LLM["MODELS"].get("fallback"),
    "options": {k: v for k, v in settings.LLM["OPTIONS"].items() if k != "api_key"},
    "has_key": bool(settings.LLM["OPTIONS"].get("api_key")),
}))
"""


def settings_in_a_fresh_process(**env: str) -> dict:
    """What chatbackend.settings makes of `env` (the real settings module, read at start-up)."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GEMINI_", "GOOGLE_", "AI_PROVIDER", "OFFLINE_", "DJANGO_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="chatbackend.settings", DJANGO_DEBUG="1", **env)
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env=clean, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_without_a_key_the_default_is_offline():
    seen = settings_in_a_fresh_process()

    assert (seen["backend"], seen["label"]) == ("llm.offline.OfflineProvider", "offline")
    assert seen["chat"] == seen["fast"] == seen["complex"] == "offline"


def test_with_a_key_the_default_is_gemini_with_the_documented_models():
    seen = settings_in_a_fresh_process(GEMINI_API_KEY="a-key", GEMINI_THINKING_BUDGET="512")

    assert (seen["backend"], seen["label"]) == ("llm.gemini.GeminiProvider", "gemini")
    assert (seen["chat"], seen["fast"], seen["complex"], seen["fallback"]) == (
        "gemini-2.5-flash",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
    )
    assert seen["has_key"]
    assert seen["options"]["include_thoughts"] is True
    assert seen["options"]["thinking_budget"] == 512
    assert seen["options"]["inline_max_bytes"] == 20 * 1024 * 1024
    assert seen["options"]["inline_cache_bytes"] == 32 * 1024 * 1024


def test_gemini_env_vars_still_name_the_models():
    seen = settings_in_a_fresh_process(
        GEMINI_API_KEY="a-key", GEMINI_MODEL="m-chat", GEMINI_MODEL_COMPLEX="m-complex"
    )

    assert (seen["chat"], seen["complex"]) == ("m-chat", "m-complex")


async def test_offline_settings_build_the_offline_backend(settings):
    settings.LLM = {
        "BACKEND": "llm.offline.OfflineProvider",
        "OPTIONS": {"chunk_delay_ms": 0},
        "MODELS": {"chat": "offline", "fast": "offline", "complex": "offline"},
    }

    provider = get_provider()

    assert isinstance(provider, ResilientProvider)
    assert isinstance(provider.backend, OfflineProvider)
    assert provider.name == backend_label() == "offline"
    assert get_provider() is provider


async def test_gemini_settings_point_at_the_stand_in(gemini_provider_settings):
    provider = get_provider()

    assert isinstance(provider.backend, GeminiProvider)
    assert provider.fallback_model == "gemini-2.5-flash-lite"
    assert backend_label() == "gemini"
    assert model_for("chat") == "gemini-2.5-flash" and model_for("complex") == "gemini-2.5-pro"
    events = [e async for e in provider.stream_chat([ChatMessage("user", "hi")], model="m")]
    assert any(isinstance(e, TextDelta) for e in events)
    [request] = gemini_provider_settings.requests
    assert request.model == "m"
    assert request.headers["x-goog-api-key"] == "test-key"


def test_one_provider_per_event_loop(gemini_provider_settings):
    async def current():
        return get_provider()

    first = asyncio.run(current())
    second = asyncio.run(current())

    assert isinstance(first.backend, GeminiProvider) and first is not second


async def test_changed_settings_rebuild_the_provider(settings):
    settings.LLM = {
        "BACKEND": "llm.offline.OfflineProvider",
        "OPTIONS": {"chunk_delay_ms": 0},
        "MODELS": {"chat": "offline", "fast": "offline", "complex": "offline"},
    }
    before = get_provider()
    settings.LLM = {**settings.LLM, "OPTIONS": {"chunk_delay_ms": 5}}

    after = get_provider()

    assert after is not before and after.backend.chunk_delay_ms == 5
    reset_providers()
    assert get_provider() is not after


def test_model_for_an_unknown_role_says_so(settings):
    settings.LLM = {"BACKEND": "llm.offline.OfflineProvider", "MODELS": {"chat": "c"}}

    with pytest.raises(KeyError, match="'complex'"):
        model_for("complex")


def llm_errors() -> list:
    return [e for e in run_checks() if e.id.startswith("llm.")]


def test_the_system_check_accepts_the_test_settings():
    assert llm_errors() == []


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ("not a dict", "llm.E001"),
        ({"BACKEND": "llm.nowhere.Provider", "MODELS": {}}, "llm.E002"),
        (
            {
                "BACKEND": "llm.offline.OfflineProvider",
                "MODELS": {"chat": "c", "fast": "f"},
            },
            "llm.E005",
        ),
        (
            {
                "BACKEND": "llm.gemini.GeminiProvider",
                "OPTIONS": {"api_key": "", "thinking_budget": "lots"},
                "MODELS": {"chat": "c", "fast": "f", "complex": "x"},
            },
            "llm.E006",
        ),
    ],
)
def test_the_system_check_reports_a_broken_setting(settings, config, problem):
    settings.LLM = config

    assert problem in {e.id for e in llm_errors()}


def test_the_gemini_option_check_names_each_problem():
    problems = GeminiProvider.check_options({"api_key": "", "thinking_budget": "lots"})

    assert any("api_key" in p for p in problems)
    assert any("thinking_budget" in p for p in problems)
    assert GeminiProvider.check_options({"api_key": "k", "thinking_budget": 1024}) == []


def test_warm_up_announces_the_offline_backend(settings, caplog):
    settings.LLM = {"BACKEND": "llm.offline.OfflineProvider", "MODELS": {}}

    warm_up()

    assert any("offline provider" in r.getMessage() for r in caplog.records if r.name == "llm")


def test_warm_up_of_gemini_says_nothing(gemini_provider_settings, caplog):
    warm_up()

    assert not [r for r in caplog.records if r.name == "llm"]
