"""Writes: an attachment is stored only when its type is allowed, its size within the limit and its
bytes of the type it claims; on any failure nothing is stored (neither row nor file)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING
from urllib.parse import unquote_to_bytes, urlsplit
from uuid import UUID

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import Resolver404, resolve

from core.errors import ServiceError

from . import media_types
from .models import Attachment

# Defined where they belong (a read; URL signing), and found here too by callers of the services.
from .selectors import file_parts
from .signing import signed_url

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser
    from rest_framework_simplejwt.models import TokenUser

    #: Only the id is used: a stream's token user does as well as a loaded user.
    User = AbstractBaseUser | TokenUser

__all__ = [
    "attachment_from_part",
    "check_size",
    "create_attachment",
    "delete_attachments",
    "file_parts",
    "signed_url",
]

# Control characters never belong in a name that is shown and sent back in a Content-Disposition
# header (path separators are dealt with by keeping only the last component).
_UNSAFE_IN_FILENAME = re.compile(r"[\x00-\x1f\x7f]")


def _shown_size(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{size} bytes"


def check_size(*, size: int) -> None:
    """Refuse an empty file or one over `ATTACHMENT_MAX_BYTES` (the upload view calls this before
    it reads the upload into memory)."""
    if size <= 0:
        raise ServiceError("The file is empty.")
    if size > settings.ATTACHMENT_MAX_BYTES:
        raise ServiceError(
            f"The file is larger than the limit of {_shown_size(settings.ATTACHMENT_MAX_BYTES)}."
        )


def _clean_filename(filename: str) -> str:
    name = re.split(r"[\\/]", filename or "")[-1]
    return _UNSAFE_IN_FILENAME.sub("", name).strip()[:255]


def create_attachment(
    *, user: User, data: bytes, media_type: str, filename: str = ""
) -> Attachment:
    """Store `data` for `user` (a user or a JWT's `TokenUser`: only its id is used)."""
    media_type = media_types.normalize(media_type)
    if media_type in media_types.UNSPECIFIED:
        media_type = media_types.guess(data, filename)
    allowed = [media_types.normalize(t) for t in settings.ATTACHMENT_MEDIA_TYPES]
    if media_type not in allowed:
        shown = media_type or "unknown"
        raise ServiceError(
            f"Files of type {shown} are not accepted. Accepted types: {', '.join(allowed)}."
        )
    check_size(size=len(data))
    if not media_types.content_matches(media_type, data):
        if media_types.is_text(media_type):
            raise ServiceError(f"A {media_type} file must be UTF-8 text without NUL bytes.")
        sniffed = media_types.sniff(data)
        looks_like = f"it looks like {sniffed}" if sniffed else "its type is not recognised"
        raise ServiceError(f"The file's content is not {media_type} ({looks_like}).")

    attachment = Attachment(
        user_id=user.pk,
        media_type=media_type,
        filename=_clean_filename(filename),
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    attachment.file.save("", ContentFile(data), save=False)
    try:
        attachment.save(force_insert=True)
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)
        raise
    return attachment


def _data_url_bytes(url: str, declared: str) -> tuple[bytes, str]:
    """The bytes and media type of a `data:` URL (RFC 2397), refusing one too large to be allowed
    before decoding it. Written here because the standard library only decodes data URLs inside
    `urllib.request.urlopen`, which we do not want near user input."""
    header, comma, payload = url[len("data:") :].partition(",")
    if not comma:
        raise ServiceError("The data: URL is malformed.")
    params = [p.strip() for p in header.split(";")]
    is_base64 = params[-1].lower() == "base64"
    url_type = media_types.normalize(params[0]) if params[0] else ""
    if url_type in media_types.UNSPECIFIED:
        url_type = ""
    if declared and url_type and media_types.normalize(declared) != url_type:
        raise ServiceError(f"The file part's mediaType {declared} differs from its data: URL's.")
    # A base64 payload decodes to 3/4 of its length; anything far over the limit is refused unread.
    if len(payload) * 3 // 4 > settings.ATTACHMENT_MAX_BYTES + 3:
        check_size(size=len(payload) * 3 // 4)
    if is_base64:
        try:
            # Both alphabets: browsers' FileReader gives the standard one; some clients URL-safe.
            data = base64.b64decode(payload.replace("-", "+").replace("_", "/"), validate=True)
        except (binascii.Error, ValueError):
            raise ServiceError("The data: URL's base64 is invalid.") from None
    else:
        data = unquote_to_bytes(payload)
    return data, declared or url_type


def _own_attachment(user: User, attachment_id: UUID) -> Attachment:
    attachment = Attachment.objects.filter(pk=attachment_id, user_id=user.pk).first()
    if attachment is None:
        # The same answer for another user's attachment as for none at all: nothing leaks.
        raise ServiceError("The file part refers to an unknown attachment.")
    return attachment


def attachment_from_part(*, user: User, part: dict) -> Attachment:
    """The attachment a `useChat` file part (`{"type": "file", "mediaType", "url", "filename"?}`)
    carries: a `data:` URL is stored now; the URL of an earlier upload of this user (its signed
    content URL, even expired, or `/api/chat/attachments/<id>/`) is that upload. Remote URLs are
    never fetched."""
    if not isinstance(part, dict) or part.get("type") != "file":
        raise ServiceError("Not a file part.")
    url = part.get("url")
    media_type = part.get("mediaType") or ""
    filename = part.get("filename") or ""
    if not isinstance(url, str) or not url:
        raise ServiceError("The file part has no url.")
    if not isinstance(media_type, str) or not isinstance(filename, str):
        raise ServiceError("The file part's mediaType and filename must be strings.")

    if url[:5].lower() == "data:":
        data, media_type = _data_url_bytes(url, media_type)
        return create_attachment(user=user, data=data, media_type=media_type, filename=filename)

    parsed = urlsplit(url)
    if parsed.scheme.lower() not in {"", "http", "https"}:
        raise ServiceError(f"File URLs with the scheme {parsed.scheme}: are not accepted.")
    try:
        match = resolve(parsed.path)
    except Resolver404:
        match = None
    # Our own attachment URLs, relative or absolute (a browser may have resolved it against the
    # page): they name the upload by id, and only the sender's own uploads are found. Nothing is
    # fetched either way.
    if match is not None and match.namespace == "attachments" and "pk" in match.kwargs:
        return _own_attachment(user, match.kwargs["pk"])
    if parsed.scheme:
        raise ServiceError(
            "Remote URLs are not fetched: upload the file or send it as a data: URL."
        )
    raise ServiceError("The file part's url is neither a data: URL nor an uploaded attachment.")


def delete_attachments(*, ids: Iterable[UUID | str], user: User | None = None) -> int:
    """Delete these attachments (only `user`'s, when given) and their stored files; how many rows
    went. The files go once the deletion is committed (`attachments.models.delete_stored_file`)."""
    valid_ids = [i for i in ids if _is_uuid(i)]
    queryset = Attachment.objects.filter(pk__in=valid_ids)
    if user is not None:
        queryset = queryset.filter(user_id=user.pk)
    with transaction.atomic():
        deleted, _ = queryset.delete()
    return deleted


def _is_uuid(value: object) -> bool:
    if isinstance(value, UUID):
        return True
    try:
        UUID(str(value))
    except ValueError:
        return False
    return True
