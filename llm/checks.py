"""A system check for `settings.LLM` (see `llm.registry`): run by `manage.py check`, `migrate`,
`runserver` and at ASGI start-up, so a broken configuration is reported before the first chat."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Error, register

from .registry import DEFAULT_BACKEND

REQUIRED_MODELS = ("chat", "fast", "complex")


@register()
def check_llm_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    config = getattr(settings, "LLM", None)
    if config is None:
        return []  # the offline backend with its defaults
    if not isinstance(config, dict):
        return [Error("settings.LLM must be a dict.", id="llm.E001")]
    errors: list[Error] = []
    path = config.get("BACKEND") or DEFAULT_BACKEND
    backend: Any = None
    try:
        from django.utils.module_loading import import_string

        backend = import_string(path)
    except ImportError as exc:
        errors.append(
            Error(
                f"settings.LLM['BACKEND'] {path!r} cannot be imported: {exc}",
                hint="Use 'llm.gemini.GeminiProvider' or 'llm.offline.OfflineProvider'.",
                id="llm.E002",
            )
        )
    options = config.get("OPTIONS", {})
    if not isinstance(options, dict):
        errors.append(Error("settings.LLM['OPTIONS'] must be a dict.", id="llm.E003"))
        options = {}
    models = config.get("MODELS", {})
    if not isinstance(models, dict):
        errors.append(Error("settings.LLM['MODELS'] must be a dict.", id="llm.E004"))
        models = {}
    for role in REQUIRED_MODELS:
        if not isinstance(models.get(role), str) or not models.get(role):
            errors.append(
                Error(f"settings.LLM['MODELS'] needs a model name for {role!r}.", id="llm.E005")
            )
    fallback = models.get("fallback")
    if fallback is not None and not isinstance(fallback, str):
        errors.append(
            Error("settings.LLM['MODELS']['fallback'] must be a model name.", id="llm.E005")
        )
    problems = getattr(backend, "check_options", None)
    if problems is not None:
        errors.extend(
            Error(f"settings.LLM['OPTIONS']: {problem}", id="llm.E006")
            for problem in problems(options)
        )
    return errors
