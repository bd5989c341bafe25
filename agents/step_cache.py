"""The step cache: a step's output, by everything that determines it, for AGENT_CACHE_TTL_S."""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from django.conf import settings
from django.core.cache import cache
from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)


class StepCache:
    """Step outputs, by everything that determines them, for AGENT_CACHE_TTL_S (0: off).

    The key holds the user: a hit (`cached: true` on the step) must never tell one user what
    another one submitted. A cache that fails (Redis down) is a miss, never a failed step."""

    def __init__(self, *, user_id: int, provider: str, pattern: str):
        self.user_id, self.provider, self.pattern = user_id, provider, pattern

    def key(
        self,
        *,
        step: str,
        kind: str,
        model: str,
        prompt: str,
        system: str | None,
        schema: type[BaseModel] | None,
    ) -> str:
        material = {
            "user": self.user_id,
            "provider": self.provider,
            "pattern": self.pattern,
            "step": step,
            "kind": kind,
            "model": model,
            "prompt": prompt,
            "system": system,
            "schema": schema.model_json_schema() if schema else None,
        }
        digest = hashlib.sha256(
            json.dumps(material, sort_keys=True, ensure_ascii=False, default=str).encode()
        ).hexdigest()
        return f"agents:step:{digest}"

    async def get(self, key: str, schema: type[BaseModel] | None) -> str | BaseModel | None:
        """The cached output: text (no schema) or an object valid against `schema`; None on a
        miss, or when the entry no longer fits (the schema changed since it was cached)."""
        if settings.AGENT_CACHE_TTL_S <= 0:
            return None
        try:
            value = await cache.aget(key)
        except Exception:
            logger.warning("Agent step cache unavailable", exc_info=True)
            return None
        if schema is None:
            return value if isinstance(value, str) else None
        if value is None:
            return None
        try:
            return schema.model_validate(value)
        except ValidationError:
            return None

    async def set(self, key: str, output: Any) -> None:
        if settings.AGENT_CACHE_TTL_S <= 0:
            return
        try:
            await cache.aset(key, output, timeout=settings.AGENT_CACHE_TTL_S)
        except Exception:
            logger.warning("Agent step cache unavailable", exc_info=True)
