"""Which provider the app talks to, built from Django settings.

One provider per running event loop: the Gemini provider holds an HTTP client whose connections
belong to the loop that opened them (uvicorn has one loop; tests get a new loop per test). The
provider is rebuilt when the settings it was built from change (e.g. pytest-django's `settings`
fixture), and `reset_providers()` forgets them all."""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import Any

from django.conf import settings

from .base import LLMProvider

_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[tuple[Any, ...], LLMProvider]]
_by_loop = weakref.WeakKeyDictionary()
_no_loop: tuple[tuple[Any, ...], LLMProvider] | None = None


def _config() -> tuple[Any, ...]:
    name = getattr(settings, "AI_PROVIDER", "offline")
    if name == "offline":
        return ("offline", getattr(settings, "OFFLINE_CHUNK_DELAY_MS", 30))
    return (
        "gemini",
        settings.GEMINI_API_KEY,
        getattr(settings, "GEMINI_BASE_URL", None),
        float(getattr(settings, "GEMINI_TIMEOUT_S", 60)),
        int(getattr(settings, "GEMINI_MAX_RETRIES", 3)),
        float(getattr(settings, "GEMINI_RETRY_INITIAL_DELAY_S", 1.0)),
        float(getattr(settings, "GEMINI_RETRY_MAX_DELAY_S", 20.0)),
        getattr(settings, "GEMINI_FALLBACK_MODEL", None) or None,
        int(getattr(settings, "GEMINI_MAX_CONNECTIONS", 1000)),
    )


def build_provider(config: tuple[Any, ...]) -> LLMProvider:
    if config[0] == "offline":
        from .offline import OfflineProvider

        return OfflineProvider(chunk_delay_ms=config[1])
    if config[0] != "gemini":
        raise ValueError(f"Unknown AI_PROVIDER {config[0]!r}")
    from .gemini import GeminiProvider

    _, api_key, base_url, timeout_s, retries, initial, max_delay, fallback, connections = config
    return GeminiProvider(
        api_key=api_key,
        base_url=base_url,
        timeout_s=timeout_s,
        max_retries=retries,
        retry_initial_delay_s=initial,
        retry_max_delay_s=max_delay,
        fallback_model=fallback,
        max_connections=connections,
    )


def get_provider() -> LLMProvider:
    """The provider for the running event loop (built on first use, then cached)."""
    global _no_loop
    config = _config()
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        cached = _by_loop.get(loop) if loop is not None else _no_loop
        if cached is not None and cached[0] == config:
            return cached[1]
        provider = build_provider(config)
        if loop is not None:
            _by_loop[loop] = (config, provider)
        else:
            _no_loop = (config, provider)
        return provider


def reset_providers() -> None:
    """Forget every cached provider (tests; after changing settings by hand)."""
    global _no_loop
    with _lock:
        _by_loop.clear()
        _no_loop = None


def provider_name() -> str:
    """ "gemini" or "offline", from settings, without building anything (for /healthz)."""
    return str(getattr(settings, "AI_PROVIDER", "offline"))
