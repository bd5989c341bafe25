import logging
import os

from django.conf import settings
from django.core.asgi import get_asgi_application

from .shutdown import GracefulShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings")

django_application = get_asgi_application()

if settings.AI_PROVIDER == "gemini":
    # google-genai takes about a second to import: at start-up, not on the event loop while the
    # first chat request (and every other request) waits.
    import llm.gemini  # noqa: F401
else:
    logging.getLogger("llm").warning(
        "AI_PROVIDER=offline: replies come from the local offline provider, not Gemini "
        "(set GEMINI_API_KEY to use Gemini)."
    )

# Wrapped so that SIGTERM ends open streams the way a client disconnect does: saved, not lost.
application = GracefulShutdown(django_application)
