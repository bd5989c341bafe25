from adrf.views import APIView
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView as DRFAPIView


class StreamingAPIView(APIView):
    """An async DRF view whose success response is a stream it builds itself. Clients of a stream
    send `Accept: text/event-stream` (or text/plain); DRF would refuse those with 406 before the
    view runs, since its renderers only know JSON. The view chooses its stream format itself, and
    errors raised before streaming are always rendered as JSON."""

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"

    def get_throttles(self):
        # A throttle whose limit is off ("0") is skipped, with its cache round trip.
        return [t for t in super().get_throttles() if getattr(t, "enabled", True)]

    def check_throttles(self, request):
        # DRF's own: our throttles are sync, and adrf's version always hops through async_to_sync.
        DRFAPIView.check_throttles(self, request)
