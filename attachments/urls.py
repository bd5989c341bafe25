from django.urls import path

from .views import AttachmentContentView, AttachmentDetailView, AttachmentUploadView

app_name = "attachments"

urlpatterns = [
    path("", AttachmentUploadView.as_view(), name="upload"),
    path("<uuid:pk>/", AttachmentDetailView.as_view(), name="detail"),
    path("<uuid:pk>/content/", AttachmentContentView.as_view(), name="content"),
]
