import gc
import os
from concurrent.futures import Executor, Future

from asgiref.sync import ThreadSensitiveContext
from django.conf import settings
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


def tune_garbage_collection() -> None:
    """Leave what start-up built (modules, settings, URL patterns, the SDK's types: most of the
    process's objects) out of every collection (`gc.freeze()`), and collect less often
    (`GC_THRESHOLDS`). Nearly everything a turn allocates is freed by reference counting: at
    Python's default thresholds, 200 concurrent turns triggered ~290 collections that found ~15
    objects each, and 3 full ones over every live object, ~3 ms of CPU a turn
    (docs/benchmarks.md); tuned, ~0.4 ms."""
    gc.freeze()
    if settings.GC_THRESHOLDS:
        gc.set_threshold(*settings.GC_THRESHOLDS)


tune_garbage_collection()

#: The requests whose views do all their database work in `core.db.run_db`'s pool: the streams.
STREAM_PATHS = ("/api/chat/stream",)
STREAM_PATH_ENDS = ("/stream/", "/stop/")


class RunsInline(Executor):
    """An executor that runs each job at once, in the submitting thread."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever awaits the job
            future.set_exception(exc)
        return future


class StreamRequestsRunSyncCodeInline:
    """Django runs a request's sync code in a thread of its own, started on its first use and
    joined at its end (~0.4 ms of CPU together, a tenth of a chat turn); even a long-lived
    thread shared by every stream cost ~0.2 ms a turn in hops. A stream's only sync code is
    Django's closing of its response (the request_finished receivers: closing database
    connections, of which a stream's request holds none since `core.db.run_db` gives each back,
    caches and the urlconf) and, for its JSON answers (errors, the stop view's), DRF's rendering:
    no I/O. So stream requests run it inline, on the event loop (asgiref's
    ThreadSensitiveContext with an executor, entered before Django's own, which then defers to
    it). Every other request keeps Django's thread of its own: its sync views may block on the
    database."""

    def __init__(self, app):
        self.app = app
        self.executor = RunsInline()

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(STREAM_PATHS) or (
            path.startswith("/api/chat/conversations/") and path.endswith(STREAM_PATH_ENDS)
        ):
            async with ThreadSensitiveContext(executor=self.executor):
                return await self.app(scope, receive, send)
        return await self.app(scope, receive, send)


# Wrapped so that SIGTERM ends open streams the way a client disconnect does: saved, not lost;
# and so that a body over MAX_REQUEST_BYTES (CHAT_MAX_REQUEST_BYTES on the chat stream and the
# attachment upload) is refused with a 413 before it is read whole (core.limits).
application = GracefulShutdown(BodySizeLimit(StreamRequestsRunSyncCodeInline(django_application)))
