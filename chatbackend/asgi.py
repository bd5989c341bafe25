import os

from django.core import signals
from django.core.asgi import get_asgi_application
from django.db import close_old_connections, reset_queries

import llm
from core.limits import BodySizeLimit

from .shutdown import GracefulShutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbackend.settings")

django_application = get_asgi_application()


# Under ASGI every request runs its sync code in a thread of its own, started for it: when it
# starts, that thread has no connection to close and no query log to reset. Django would still
# hop to it (starting it, ~0.3 ms) to run these two; at the request's end close_old_connections
# still runs there, where the request's sync code (if any) left a connection.
def no_hop_when_requests_start() -> None:
    signals.request_started.disconnect(close_old_connections)
    signals.request_started.disconnect(reset_queries)


no_hop_when_requests_start()

# Imports the model backend now (google-genai takes about a second: better at start-up than on
# the event loop while the first request waits); the offline backend says that it answers.
llm.warm_up()

# Wrapped so that SIGTERM ends open streams the way a client disconnect does: saved, not lost;
# and so that a body over MAX_REQUEST_BYTES (CHAT_MAX_REQUEST_BYTES on the chat stream and the
# attachment upload) is refused with a 413 before it is read whole (core.limits).
application = GracefulShutdown(BodySizeLimit(django_application))
