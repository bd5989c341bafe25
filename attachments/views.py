from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.authentication import StatelessJWTAuthentication

from . import media_types, services
from .models import Attachment
from .selectors import attachment_for_signature, attachment_of, read_bytes
from .serializers import AttachmentSerializer, AttachmentUploadSerializer
from .throttling import AttachmentRateThrottle


class AttachmentUploadView(APIView):
    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [AttachmentRateThrottle]

    @extend_schema(
        summary="Upload a file to attach to a chat message",
        request={"multipart/form-data": AttachmentUploadSerializer},
        responses={201: AttachmentSerializer, 400: OpenApiResponse(description="Refused file")},
    )
    def post(self, request):
        serializer = AttachmentUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        services.check_size(size=upload.size)  # before the upload is read into memory
        attachment = services.create_attachment(
            user=request.user,
            data=upload.read(),
            media_type=serializer.validated_data.get("mediaType") or upload.content_type or "",
            filename=upload.name or "",
        )
        return Response(AttachmentSerializer(attachment).data, status=status.HTTP_201_CREATED)


class AttachmentDetailView(APIView):
    @extend_schema(
        summary="An attachment of yours, with a fresh signed URL", responses=AttachmentSerializer
    )
    def get(self, request, pk):
        attachment = attachment_of(user=request.user, attachment_id=pk)
        return Response(AttachmentSerializer(attachment).data)

    @extend_schema(summary="Delete an attachment of yours and its file", responses={204: None})
    def delete(self, request, pk):
        attachment = attachment_of(user=request.user, attachment_id=pk)
        services.delete_attachments(ids=[attachment.pk], user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class AttachmentContentView(APIView):
    """Served on the signature alone, since an `<img>` cannot send a bearer token; a token that is
    sent must be the owner's."""

    authentication_classes = [StatelessJWTAuthentication]
    permission_classes = [AllowAny]

    @extend_schema(
        summary="An attachment's bytes (the signed URL from the upload or a message's file part)",
        parameters=[
            OpenApiParameter("t", str, description="Signature timestamp", required=True),
            OpenApiParameter("s", str, description="Signature", required=True),
        ],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY),
            404: OpenApiResponse(description="Unknown attachment, bad or expired signature"),
        },
    )
    def get(self, request, pk):
        attachment = attachment_for_signature(
            attachment_id=pk,
            timestamp=request.query_params.get("t", ""),
            signature=request.query_params.get("s", ""),
            viewer_id=request.user.pk if request.user is not None else None,
        )
        return content_response(attachment)


def content_response(attachment: Attachment) -> HttpResponse:
    """The stored bytes, with the headers that keep them from acting as a page of this site."""
    # Whole, not a FileResponse: under ASGI Django reads a file iterator into a list anyway
    # (StreamingHttpResponse.__aiter__), and attachments are at most ATTACHMENT_MAX_BYTES.
    content_type = attachment.media_type
    if media_types.is_text(content_type):
        content_type += "; charset=utf-8"  # create_attachment checked that it is
    response = HttpResponse(read_bytes(attachment), content_type=content_type)
    extension = media_types.extension_for(attachment.media_type)
    response["Content-Disposition"] = content_disposition_header(
        not media_types.shown_inline(attachment.media_type),
        attachment.filename or f"{attachment.pk}{extension}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    if attachment.media_type != "application/pdf":
        # Opened as a page, a file runs no script and has no origin. Not for a PDF: Chrome
        # refuses to start its PDF viewer in a sandboxed document (no sandbox token allows
        # it), and with its type fixed and nosniff the bytes can only render as a PDF, whose
        # viewer runs isolated from this origin.
        response["Content-Security-Policy"] = "sandbox"
    # The bytes never change; only the owner's browser may keep them, while the URL is valid.
    patch_cache_control(response, private=True, max_age=settings.ATTACHMENT_URL_TTL_S)
    return response
