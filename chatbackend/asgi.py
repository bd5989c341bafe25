import os

from django.core.asgi import get_asgi_application

from .shutdown import GracefulShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings")

# Wrapped so that SIGTERM ends open streams the way a client disconnect does: saved, not lost.
application = GracefulShutdown(get_asgi_application())
