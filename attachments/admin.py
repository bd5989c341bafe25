from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.utils.html import format_html

from .models import Attachment
from .signing import signed_url

THUMBNAIL_STYLE = "max-width:{}px;max-height:{}px;border:1px solid #ccc"


def attachment_preview(attachment: Attachment, *, size: int = 96) -> str:
    """A thumbnail for an image, a link for anything else; both through a signed content URL.
    Escaped by `format_html`: the filename is the client's."""
    url = signed_url(attachment_id=attachment.pk, user_id=attachment.user_id)
    if attachment.media_type.startswith("image/"):
        return format_html(
            '<a href="{}" target="_blank" rel="noopener"><img src="{}" alt="{}" style="{}"></a>',
            url,
            url,
            attachment.filename,
            THUMBNAIL_STYLE.format(size, size),
        )
    return format_html(
        '<a href="{}" target="_blank" rel="noopener">{}</a>', url, attachment.filename or "open"
    )


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ["thumbnail", "filename", "user", "media_type", "human_size", "created_at"]
    list_filter = ["media_type", ("created_at", admin.DateFieldListFilter)]
    search_fields = ["filename", "user__username", "sha256", "=id"]
    date_hierarchy = "created_at"
    list_select_related = ["user"]
    fields = [
        "preview",
        "id",
        "user",
        "filename",
        "media_type",
        "human_size",
        "sha256",
        "stored_as",
        "created_at",
    ]
    readonly_fields = fields

    @admin.display(description="")
    def thumbnail(self, obj: Attachment) -> str:
        return attachment_preview(obj, size=48)

    @admin.display(description="preview")
    def preview(self, obj: Attachment) -> str:
        return attachment_preview(obj, size=320)

    @admin.display(description="stored as")
    def stored_as(self, obj: Attachment) -> str:
        # The storage's name, not its URL: files are served only through signed URLs.
        return obj.file.name

    @admin.display(description="size", ordering="size")
    def human_size(self, obj: Attachment) -> str:
        return filesizeformat(obj.size)

    def has_add_permission(self, request) -> bool:
        return False  # attachments come from users' uploads, checked by the services
