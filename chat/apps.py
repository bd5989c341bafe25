import logging

from django.apps import AppConfig
from django.conf import settings


class ChatConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "chat"

    def ready(self) -> None:
        if settings.AI_PROVIDER == "offline":
            logging.getLogger("llm").warning(
                "AI_PROVIDER=offline: replies come from the local offline provider, not Gemini "
                "(set GEMINI_API_KEY to use Gemini)."
            )
