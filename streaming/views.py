from adrf.views import APIView
from rest_framework.renderers import JSONRenderer


class StreamingAPIView(APIView):
    """An async DRF view whose success response is a stream it builds itself. Clients of a stream
    send `Accept: text/event-stream` (or text/plain); DRF would refuse those with 406 before the
    view runs, since its renderers only know JSON. The view chooses its stream format itself, and
    errors raised before streaming are always rendered as JSON."""

    def perform_content_negotiation(self, request, force=False):
        return JSONRenderer(), "application/json"
