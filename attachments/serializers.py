from rest_framework import serializers

from .models import Attachment
from .signing import signed_url


class AttachmentUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)  # the service says why an empty one fails
    mediaType = serializers.CharField(  # the AI SDK's name
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="The file's media type; by default the type the upload's part declares.",
    )


class AttachmentSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(
        help_text="Signed URL of the content, valid for ATTACHMENT_URL_TTL_S seconds."
    )
    mediaType = serializers.CharField(source="media_type", read_only=True)

    class Meta:
        model = Attachment
        fields = ["id", "url", "mediaType", "filename", "size"]
        read_only_fields = fields

    def get_url(self, attachment: Attachment) -> str:
        return signed_url(attachment_id=attachment.pk, user_id=attachment.user_id)
