"""The Gemini backend (`settings.LLM["BACKEND"] = "llm.gemini.GeminiProvider"`): `transport`
(google-genai's API client on aiohttp), `wire` (REST JSON ⇄ typed values), `provider`."""

from .provider import GeminiProvider

__all__ = ["GeminiProvider"]
