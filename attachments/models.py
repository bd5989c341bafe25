import uuid
from functools import partial

from django.conf import settings
from django.db import models, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .media_types import extension_for


def storage_name(attachment: "Attachment", filename: str) -> str:
    """Where the bytes are kept: chosen by us, never by the client's filename."""
    return f"attachments/{attachment.user_id}/{attachment.id}{extension_for(attachment.media_type)}"


class Attachment(models.Model):
    """A file a user sent to the chat: kept through Django's storage API (`STORAGES["default"]`)
    and served only through a signed URL (`attachments.signing.signed_url`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="attachments"
    )
    file = models.FileField(upload_to=storage_name, max_length=255)
    media_type = models.CharField(max_length=100)
    filename = models.CharField(max_length=255, blank=True, help_text="As the client named it.")
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "-created_at"])]

    def __str__(self) -> str:
        return self.filename or str(self.id)


@receiver(post_delete, sender=Attachment)
def delete_stored_file(sender, instance: Attachment, using: str, **kwargs) -> None:
    """However a row goes (a service, the admin, its user's deletion cascading), its file goes too,
    once the deletion is committed: a rolled-back deletion keeps a row whose file still exists."""
    from .selectors import recent_files

    recent_files.discard(str(instance.pk))
    if instance.file.name:
        delete_file = partial(instance.file.storage.delete, instance.file.name)
        transaction.on_commit(delete_file, using=using)
