"""pytest fixtures for the Gemini stand-in. Loaded by the root conftest
(`pytest_plugins = ["tests.fixtures_gemini"]`, or `from tests.fixtures_gemini import *`).

* `gemini_standin`: a running `GeminiStandIn`, reset for each test (one server per session).
* `gemini_provider_settings`: Django settings pointing `llm.get_provider()` at the stand-in.
* `gemini_provider`: the Gemini backend on the stand-in, wrapped as `get_provider()` wraps it
  (`llm.build_provider`; no settings).
"""

from __future__ import annotations

import pytest

from tests.gemini_standin import GeminiStandIn, json_reply

__all__ = [
    "STANDIN_OPTIONS",
    "STANDIN_TITLE",
    "TITLE_MODEL",
    "gemini_provider",
    "gemini_provider_settings",
    "gemini_standin",
    "gemini_standin_server",
]

#: CHAT_TITLE_MODEL with the stand-in (`gemini_provider_settings`), and the title it writes: a
#: model of its own, so that title calls never take the replies a test queued for the chat.
TITLE_MODEL = "gemini-2.0-flash-lite"
STANDIN_TITLE = "Stand-in title"

#: The stand-in's options for the Gemini backend (besides its base URL): 2 retries, 10-50 ms
#: backoff, a 10 s timeout.
STANDIN_OPTIONS = {
    "api_key": "test-key",
    "timeout_s": 10.0,
    "max_retries": 2,
    "retry_initial_delay_s": 0.01,
    "retry_max_delay_s": 0.05,
}


def standin_llm_settings(base_url: str, *, fallback: str, **options) -> dict:
    """A `settings.LLM` for the Gemini backend on the stand-in at `base_url`."""
    return {
        "BACKEND": "llm.gemini.GeminiProvider",
        "OPTIONS": {**STANDIN_OPTIONS, "base_url": base_url, **options},
        "MODELS": {
            "chat": "gemini-2.5-flash",
            "fast": "gemini-2.5-flash",
            "complex": "gemini-2.5-pro",
            "fallback": fallback,
        },
    }


@pytest.fixture(scope="session")
def gemini_standin_server():
    with GeminiStandIn() as server:
        yield server


@pytest.fixture
def gemini_standin(gemini_standin_server):
    """The session's stand-in, with no queued replies, no handler and no recorded requests; its
    TITLE_MODEL answers STANDIN_TITLE unless a test queues otherwise for it."""
    gemini_standin_server.reset()
    gemini_standin_server.handle_model(
        TITLE_MODEL, lambda request: json_reply({"title": STANDIN_TITLE})
    )
    yield gemini_standin_server
    gemini_standin_server.reset()


@pytest.fixture
def gemini_provider_settings(settings, gemini_standin):
    """`llm.get_provider()` returns the Gemini backend on the stand-in (2 retries, 10-50 ms
    backoff, fallback to the default GEMINI_FALLBACK_MODEL); conversation titles from
    TITLE_MODEL. Yields the stand-in."""
    from llm.registry import reset_providers

    settings.LLM = standin_llm_settings(
        gemini_standin.base_url, fallback=settings.GEMINI_FALLBACK_MODEL
    )
    settings.CHAT_TITLE_MODEL = TITLE_MODEL
    # chat/ still reads these two until it asks llm.model_for().
    settings.AI_PROVIDER = "gemini"
    settings.GEMINI_API_KEY = "test-key"
    reset_providers()
    yield gemini_standin
    reset_providers()


@pytest.fixture
def gemini_provider(gemini_standin):
    """The Gemini backend on the stand-in, as `llm.get_provider()` builds it: 2 retries, 10-50 ms
    backoff, fallback "gemini-fallback"."""
    from llm import build_provider

    return build_provider(standin_llm_settings(gemini_standin.base_url, fallback="gemini-fallback"))
