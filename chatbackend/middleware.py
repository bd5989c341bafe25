"""Django's own middleware, without a thread hop per hook under ASGI.

For an async request, Django runs each sync hook of a `MiddlewareMixin` middleware
(`process_request`, `process_view`, `process_response`) through `sync_to_async`: with our stack
that is 12 thread hops per request, about 3.8 ms of CPU per chat turn (`bench.turn_cost`). The
hooks of these four only read the request and set headers, cookies and lazy objects, so here they
run on the event loop. The exception is saving a session or messages that the view used, which
may write to the database: that `process_response` still runs in a thread, as before. Under WSGI
(and Django's sync test client) nothing changes.

Security, CSRF and X-Frame-Options likewise (6 more hops): their hooks set headers and cookies and
read the request, whose body Django has already read under ASGI. `check --deploy` looks for them
by Django's dotted paths; `chatbackend.checks` runs those checks as if Django's classes were
listed, so none of them is lost."""

from asgiref.sync import sync_to_async
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.sessions.middleware import SessionMiddleware
from django.db import OperationalError
from django.middleware.clickjacking import XFrameOptionsMiddleware
from django.middleware.common import CommonMiddleware
from django.middleware.csrf import CsrfViewMiddleware
from django.middleware.security import SecurityMiddleware
from django.utils.deprecation import MiddlewareMixin

from core.errors import database_unavailable


class HooksOnEventLoop:
    """Mixin for a `MiddlewareMixin` middleware whose hooks do no I/O (see `response_io`)."""

    def __call__(self, request):
        if self.async_mode:
            return self._acall_on_loop(request)
        return super().__call__(request)

    def response_io(self, request) -> bool:
        """True when `process_response` may touch the database or cache for this request."""
        return False

    async def _acall_on_loop(self, request):
        response = None
        if hasattr(self, "process_request"):
            response = self.process_request(request)
        response = response or await self.get_response(request)
        if hasattr(self, "process_response"):
            if self.response_io(request):
                process_response = sync_to_async(self.process_response, thread_sensitive=True)
                response = await process_response(request, response)
            else:
                response = self.process_response(request, response)
        return response


class Session(HooksOnEventLoop, SessionMiddleware):
    def response_io(self, request) -> bool:
        return request.session.accessed  # may be saved


class Common(HooksOnEventLoop, CommonMiddleware):
    pass


class Authentication(HooksOnEventLoop, AuthenticationMiddleware):
    pass  # request.user stays lazy: no database access here


class Messages(HooksOnEventLoop, MessageMiddleware):
    def response_io(self, request) -> bool:
        storage = getattr(request, "_messages", None)
        return storage is not None and (storage.used or storage.added_new)


class Security(HooksOnEventLoop, SecurityMiddleware):
    pass  # headers and the HTTPS redirect


class Csrf(HooksOnEventLoop, CsrfViewMiddleware):
    async def process_view(self, request, callback, callback_args, callback_kwargs):
        # A coroutine function: Django's async handler awaits it instead of a hop (under WSGI it
        # adapts it the other way). API views are exempt; a form's POST is already in memory.
        return super().process_view(request, callback, callback_args, callback_kwargs)


class XFrameOptions(HooksOnEventLoop, XFrameOptionsMiddleware):
    pass


class DatabaseUnavailable(MiddlewareMixin):
    """A database fault in a view outside DRF (the admin, the playground's pages) is the API's
    503 `service_unavailable`, as DRF views already answer (core.errors), not a 500. Only an
    exception hook: no hop on the requests that succeed."""

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError):
            return database_unavailable(exception)
        return None
