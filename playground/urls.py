from django.urls import path

from .views import PlaygroundView

urlpatterns = [path("", PlaygroundView.as_view(), name="playground")]
