"""pytest fixtures for the Gemini stand-in. Loaded by the root conftest
(`pytest_plugins = ["tests.fixtures_gemini"]`, or `from tests.fixtures_gemini import *`).

* `gemini_standin`: a running `GeminiStandIn`, reset for each test (one server per session).
* `gemini_provider_settings`: Django settings pointing `llm.get_provider()` at the stand-in.
* `gemini_provider`: a `GeminiProvider` built directly against the stand-in (no settings).
"""

from __future__ import annotations

import pytest

from tests.gemini_standin import GeminiStandIn

__all__ = [
    "gemini_provider",
    "gemini_provider_settings",
    "gemini_standin",
    "gemini_standin_server",
]

#: Settings `gemini_provider_settings` applies (besides the stand-in's base URL).
STANDIN_SETTINGS = {
    "AI_PROVIDER": "gemini",
    "GEMINI_API_KEY": "test-key",
    "GEMINI_TIMEOUT_S": 10.0,
    "GEMINI_MAX_RETRIES": 2,
    "GEMINI_RETRY_INITIAL_DELAY_S": 0.01,
    "GEMINI_RETRY_MAX_DELAY_S": 0.05,
}


@pytest.fixture(scope="session")
def gemini_standin_server():
    with GeminiStandIn() as server:
        yield server


@pytest.fixture
def gemini_standin(gemini_standin_server):
    """The session's stand-in, with no queued replies, no handler and no recorded requests."""
    gemini_standin_server.reset()
    yield gemini_standin_server
    gemini_standin_server.reset()


@pytest.fixture
def gemini_provider_settings(settings, gemini_standin):
    """`llm.get_provider()` returns a GeminiProvider on the stand-in (2 retries, 10-50 ms
    backoff, the default GEMINI_FALLBACK_MODEL). Yields the stand-in."""
    from llm.registry import reset_providers

    for name, value in STANDIN_SETTINGS.items():
        setattr(settings, name, value)
    settings.GEMINI_BASE_URL = gemini_standin.base_url
    reset_providers()
    yield gemini_standin
    reset_providers()


@pytest.fixture
def gemini_provider(gemini_standin):
    """A GeminiProvider on the stand-in: 2 retries, 10-50 ms backoff, fallback
    "gemini-fallback"."""
    from llm.gemini import GeminiProvider

    return GeminiProvider(
        api_key="test-key",
        base_url=gemini_standin.base_url,
        timeout_s=10,
        max_retries=2,
        retry_initial_delay_s=0.01,
        retry_max_delay_s=0.05,
        fallback_model="gemini-fallback",
    )
