import os

from django.core.asgi import get_asgi_application

import llm
from core.limits import BodySizeLimit

from .shutdown import GracefulShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings")

django_application = get_asgi_application()

# Imports the model backend now (google-genai takes about a second: better at start-up than on
# the event loop while the first request waits); the offline backend says that it answers.
llm.warm_up()

# Wrapped so that SIGTERM ends open streams the way a client disconnect does: saved, not lost;
# and so that a body over MAX_REQUEST_BYTES (CHAT_MAX_REQUEST_BYTES on the chat stream and the
# attachment upload) is refused with a 413 before it is read whole (core.limits).
application = GracefulShutdown(BodySizeLimit(django_application))
