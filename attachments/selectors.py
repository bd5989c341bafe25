"""Reads: an owner's attachment, a signed request's attachment, and the bytes for the model."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from core.errors import NotFound
from llm.types import FilePart

from .models import Attachment
from .signing import signature_valid

logger = logging.getLogger(__name__)


def attachments_of(*, user):
    return Attachment.objects.filter(user_id=user.pk)


def attachment_of(*, user, attachment_id: UUID | str) -> Attachment:
    """`user`'s attachment; another user's is as unknown as a missing one (404)."""
    attachment = attachments_of(user=user).filter(pk=attachment_id).first()
    if attachment is None:
        raise NotFound("Not found.")
    return attachment


def attachment_for_signature(
    *, attachment_id: UUID | str, timestamp: str, signature: str, viewer_id: int | str | None
) -> Attachment:
    """The attachment a signed content URL names, when its signature is the owner's and recent.
    `viewer_id` is the user of a bearer token sent with the request, if any: another user's token
    is refused even with a valid signature. Every refusal is the same 404."""
    attachment = Attachment.objects.filter(pk=attachment_id).first()
    if (
        attachment is None
        or not signature_valid(
            attachment_id=attachment.pk,
            user_id=attachment.user_id,
            timestamp=timestamp,
            signature=signature,
        )
        or (viewer_id is not None and str(viewer_id) != str(attachment.user_id))
    ):
        raise NotFound("Not found.")
    return attachment


def read_bytes(attachment: Attachment) -> bytes:
    """The stored bytes; `NotFound` if the storage lost them (logged: the row outlived its file)."""
    try:
        with attachment.file.storage.open(attachment.file.name, "rb") as stored:
            return stored.read()
    except FileNotFoundError:
        logger.warning("Attachment %s has no stored file %s", attachment.pk, attachment.file.name)
        raise NotFound("Not found.") from None


def file_parts(*, ids: Iterable[UUID | str]) -> dict[str, FilePart]:
    """The files to send to the model, keyed by `str(attachment id)` (as `attachmentId` is stored
    in a message's parts). Ids with no attachment (deleted since) or no stored file are left out.
    Sync: it reads the database and the storage; from async code call it through
    `core.db.run_db`."""
    wanted = []
    for value in ids:
        try:
            wanted.append(value if isinstance(value, UUID) else UUID(str(value)))
        except ValueError:
            continue
    parts = {}
    for attachment in Attachment.objects.filter(pk__in=wanted):
        try:
            data = read_bytes(attachment)
        except NotFound:
            continue
        parts[str(attachment.pk)] = FilePart(
            media_type=attachment.media_type,
            data=data,
            key=str(attachment.pk),
            filename=attachment.filename,
        )
    return parts
