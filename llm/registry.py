"""Which provider the app talks to, configured the way Django configures caches:

    LLM = {
        "BACKEND": "llm.gemini.GeminiProvider",   # or "llm.offline.OfflineProvider"
        "OPTIONS": {...},                         # the backend's keyword arguments
        "MODELS": {"chat": ..., "fast": ..., "complex": ..., "fallback": ...},
    }

`llm.checks` validates it at start-up. `get_provider()` builds `BACKEND(**OPTIONS)` wrapped in
`llm.resilience.ResilientProvider` (fallback to `MODELS["fallback"]`).

One provider per running event loop: the Gemini backend holds HTTP connections that belong to the
loop that opened them (uvicorn has one loop; tests get a new loop per test). The provider is
rebuilt when `settings.LLM` changes (e.g. pytest-django's `settings` fixture), and
`reset_providers()` forgets them all."""

from __future__ import annotations

import asyncio
import copy
import threading
import weakref
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .base import LLMProvider
from .resilience import ResilientProvider

#: The names `model_for` knows; "fallback" is the resilience layer's.
MODEL_ROLES = ("chat", "fast", "complex", "fallback")
DEFAULT_BACKEND = "llm.offline.OfflineProvider"

_lock = threading.Lock()
_by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[dict[str, Any], Any]]
_by_loop = weakref.WeakKeyDictionary()
_no_loop: tuple[dict[str, Any], Any] | None = None


def llm_settings() -> dict[str, Any]:
    """`settings.LLM` (the offline backend when it is missing)."""
    config = getattr(settings, "LLM", None)
    return config if isinstance(config, dict) else {"BACKEND": DEFAULT_BACKEND}


def backend_class(config: dict[str, Any] | None = None) -> type:
    return import_string((config or llm_settings()).get("BACKEND") or DEFAULT_BACKEND)


def build_provider(config: dict[str, Any]) -> ResilientProvider:
    """`BACKEND(**OPTIONS)` wrapped in the resilience layer, from a dict shaped like settings.LLM.
    (Tests and benchmarks build providers with it; the app calls `get_provider()`.)"""
    options = dict(config.get("OPTIONS") or {})
    models = config.get("MODELS") or {}
    backend: LLMProvider = backend_class(config)(**options)
    return ResilientProvider(
        backend,
        fallback_model=models.get("fallback") or None,
        max_retry_delay_s=float(options.get("retry_max_delay_s", 20.0)),
    )


def get_provider() -> LLMProvider:
    """The provider for the running event loop (built on first use, then cached)."""
    global _no_loop
    config = llm_settings()
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    with _lock:
        cached = _by_loop.get(loop) if loop is not None else _no_loop
        if cached is not None and cached[0] == config:
            return cached[1]
        provider = build_provider(config)
        entry = (copy.deepcopy(config), provider)
        if loop is not None:
            _by_loop[loop] = entry
        else:
            _no_loop = entry
        return provider


def model_for(role: str) -> str:
    """The model configured for `role` ("chat", "fast" or "complex"; see settings.LLM["MODELS"])."""
    models = llm_settings().get("MODELS") or {}
    name = models.get(role)
    if not name:
        raise KeyError(f"settings.LLM['MODELS'] has no model for {role!r}")
    return str(name)


def backend_label() -> str:
    """The configured backend's short name ("gemini", "offline"), without building it."""
    return str(getattr(backend_class(), "name", "unknown"))


def warm_up() -> None:
    """At process start: import the backend (google-genai takes about a second to import: better
    now than on the event loop while the first request waits) and let it announce itself (the
    offline backend warns that replies are not from a model)."""
    announce = getattr(backend_class(), "announce", None)
    if announce is not None:
        announce()


async def close_providers() -> None:
    """Close the running loop's provider (its upstream connections), e.g. at shutdown."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    with _lock:
        entry = _by_loop.pop(loop, None)
    if entry is not None:
        await entry[1].aclose()


def reset_providers() -> None:
    """Forget every cached provider (tests; after changing settings by hand)."""
    global _no_loop
    with _lock:
        _by_loop.clear()
        _no_loop = None
