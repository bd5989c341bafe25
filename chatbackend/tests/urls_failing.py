"""The project's URLs plus views that fail, for the error-shape tests."""

from django.urls import path
from rest_framework.views import APIView

from chatbackend.urls import handler400, handler403, handler404, handler500, urlpatterns

SECRET_IN_EXCEPTION = "db-password=hunter2-do-not-show"


def plain_view_that_raises(request):
    raise RuntimeError(f"plain view failed: {SECRET_IN_EXCEPTION}")


class ApiViewThatRaises(APIView):
    authentication_classes = []
    permission_classes = []

    def get(self, request):
        raise KeyError(SECRET_IN_EXCEPTION)


urlpatterns = [
    *urlpatterns,
    path("test-failing/plain/", plain_view_that_raises),
    path("test-failing/api/", ApiViewThatRaises.as_view()),
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
