"""Signed, expiring content URLs: an `<img>` cannot send a bearer token, so the URL itself carries
the proof that its owner asked for it. The signature binds the attachment's id and its owner's id;
it expires `ATTACHMENT_URL_TTL_S` seconds after it was made (Django's `TimestampSigner`, keyed by
`SECRET_KEY` and rotated with `SECRET_KEY_FALLBACKS`)."""

from __future__ import annotations

from urllib.parse import urlencode
from uuid import UUID

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "attachments.content"


def _signer() -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=_SALT)


def _value(attachment_id: UUID | str, user_id: int | str) -> str:
    return f"{attachment_id}/{user_id}"


def signed_url(*, attachment_id: UUID | str, user_id: int | str) -> str:
    """The relative URL that serves the attachment's bytes to whoever holds it, until it expires.
    Only the timestamp and signature go in the query: the ids are in the path and in the row."""
    _, timestamp, signature = _signer().sign(_value(attachment_id, user_id)).rsplit(":", 2)
    path = reverse("attachments:content", kwargs={"pk": attachment_id})
    return f"{path}?{urlencode({'t': timestamp, 's': signature})}"


def signature_valid(
    *, attachment_id: UUID | str, user_id: int | str, timestamp: str, signature: str
) -> bool:
    """Whether the timestamp and signature were made by `signed_url` for this attachment and
    owner, less than `ATTACHMENT_URL_TTL_S` seconds ago."""
    token = f"{_value(attachment_id, user_id)}:{timestamp}:{signature}"
    try:
        _signer().unsign(token, max_age=settings.ATTACHMENT_URL_TTL_S)
    except signing.BadSignature:  # SignatureExpired is a BadSignature
        return False
    return True
