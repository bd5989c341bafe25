"""llm.get_provider(): built from settings, one provider per running event loop."""

from __future__ import annotations

import asyncio

from llm import ChatMessage, TextDelta, get_provider
from llm.gemini import GeminiProvider
from llm.offline import OfflineProvider
from llm.registry import reset_providers


async def test_offline_by_default(settings):
    settings.AI_PROVIDER = "offline"
    settings.OFFLINE_CHUNK_DELAY_MS = 0

    provider = get_provider()

    assert isinstance(provider, OfflineProvider) and provider.name == "offline"
    assert get_provider() is provider


async def test_gemini_settings_point_at_the_stand_in(gemini_provider_settings):
    provider = get_provider()

    assert isinstance(provider, GeminiProvider)
    assert get_provider() is provider
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

    assert isinstance(first, GeminiProvider) and first is not second


async def test_changed_settings_rebuild_the_provider(settings):
    settings.AI_PROVIDER = "offline"
    settings.OFFLINE_CHUNK_DELAY_MS = 0
    before = get_provider()
    settings.OFFLINE_CHUNK_DELAY_MS = 5

    after = get_provider()

    assert after is not before and after.chunk_delay_ms == 5
    reset_providers()
    assert get_provider() is not after
