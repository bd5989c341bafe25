import inspect

from adrf.views import APIView
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView as DRFAPIView

from . import db
from .throttling import counted_in_process


class StreamingAPIView(APIView):
    """An async DRF view whose success response is a stream it builds itself. Clients of a stream
    send `Accept: text/event-stream` (or text/plain); DRF would refuse those with 406 before the
    view runs, since its renderers only know JSON. The view chooses its stream format itself, and
    errors raised before streaming are always rendered as JSON.

    With `checks_on_loop`, the view's authentication and permissions must do no I/O (stateless
    JWT): adrf would run them in a thread (a hop of ~70 µs, and the request's first hop starts a
    thread of its own, ~0.3 ms); here they run on the event loop, and the throttles, which do a
    cache round trip, in a database thread (`core.db.run_db`): a hop only when a limit is on and
    counted in Redis (a local-memory count is taken on the loop)."""

    checks_on_loop = False

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"

    def get_throttles(self):
        # A throttle whose limit is off ("0") is skipped, with its cache round trip.
        return [t for t in super().get_throttles() if getattr(t, "enabled", True)]

    def check_throttles(self, request):
        if self.checks_on_loop:
            self._throttles_pending = True  # checked by async_dispatch, in a database thread
            return
        # DRF's own: our throttles are sync, and adrf's version always hops through async_to_sync.
        DRFAPIView.check_throttles(self, request)

    async def async_dispatch(self, request, *args, **kwargs):
        if not self.checks_on_loop:
            return await super().async_dispatch(request, *args, **kwargs)
        # adrf's async_dispatch, with `initial` called on the loop.
        self.args = args
        self.kwargs = kwargs
        request = self.initialize_request(request, *args, **kwargs)
        self.request = request
        self.headers = self.default_response_headers
        try:
            self.initial(request, *args, **kwargs)
            if getattr(self, "_throttles_pending", False) and self.get_throttles():
                if counted_in_process():  # no I/O: the count is in this process's memory
                    DRFAPIView.check_throttles(self, request)
                else:
                    await db.run_db(DRFAPIView.check_throttles, self, request)
            method = request.method.lower()
            handler = self.http_method_not_allowed
            if method in self.http_method_names:
                handler = getattr(self, method, handler)
            response = handler(request, *args, **kwargs)
            if inspect.isawaitable(response):
                response = await response
        except Exception as exc:  # noqa: BLE001 - as adrf and DRF: the handler renders it
            response = self.handle_exception(exc)
        self.response = self.finalize_response(request, response, *args, **kwargs)
        return self.response
