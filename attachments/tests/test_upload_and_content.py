"""The HTTP contract: upload, refusal with nothing stored, serving to the owner only."""

import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import signing
from rest_framework.test import APIClient

from attachments.models import Attachment
from attachments.signing import signed_url
from conftest import bearer

from . import files

pytestmark = pytest.mark.django_db

UPLOAD = "/api/chat/attachments/"


def upload(api, name: str, data: bytes, content_type: str, **fields):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post(
        UPLOAD,
        {"file": SimpleUploadedFile(name, data, content_type=content_type), **fields},
        format="multipart",
    )


def assert_refused(response, media_root, fragment: str):
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert fragment in error["message"]
    assert Attachment.objects.count() == 0
    assert files.stored_files(media_root) == []


def test_upload_png_stores_row_and_file(api, user, media_root):
    data = files.png()
    response = upload(api, "dot.png", data, "image/png")

    assert response.status_code == 201, response.content
    body = response.json()
    attachment = Attachment.objects.get()
    assert body == {
        "id": str(attachment.id),
        "url": body["url"],
        "mediaType": "image/png",
        "filename": "dot.png",
        "size": len(data),
    }
    assert body["url"].startswith(f"/api/chat/attachments/{attachment.id}/content/?")
    assert attachment.user == user
    assert attachment.sha256 == hashlib.sha256(data).hexdigest()
    [stored] = files.stored_files(media_root)
    assert stored.read_bytes() == data
    assert stored.name == f"{attachment.id}.png"  # our name, never the client's


def test_upload_pdf_with_declared_media_type(api, media_root):
    data = files.pdf()
    # The multipart part says octet-stream; the explicit mediaType wins.
    response = upload(
        api, "report.pdf", data, "application/octet-stream", mediaType="application/pdf"
    )

    assert response.status_code == 201, response.content
    assert response.json()["mediaType"] == "application/pdf"
    [stored] = files.stored_files(media_root)
    assert stored.read_bytes() == data


def test_png_declared_as_pdf_is_refused(api, media_root):
    response = upload(api, "x.pdf", files.png(), "application/pdf")
    assert_refused(response, media_root, "not application/pdf (it looks like image/png)")


def test_pdf_named_png_is_refused(api, media_root):
    response = upload(api, "photo.png", files.pdf(), "image/png")
    assert_refused(response, media_root, "not image/png")


def test_text_with_nul_is_refused(api, media_root):
    response = upload(api, "notes.txt", b"hello\x00world", "text/plain")
    assert_refused(response, media_root, "UTF-8 text without NUL bytes")


def test_type_outside_the_list_is_refused(api, media_root):
    gif = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"
    response = upload(api, "a.gif", gif, "image/gif")
    assert_refused(response, media_root, "image/gif are not accepted")


def test_oversized_file_is_refused(api, media_root, settings):
    settings.ATTACHMENT_MAX_BYTES = 100
    response = upload(api, "big.png", files.png(40, 40), "image/png")
    assert_refused(response, media_root, "larger than the limit")


def test_empty_file_is_refused(api, media_root):
    response = upload(api, "empty.txt", b"", "text/plain")
    assert_refused(response, media_root, "empty")


def test_upload_needs_a_token(media_root):
    response = upload(APIClient(), "dot.png", files.png(), "image/png")
    assert response.status_code == 401
    assert Attachment.objects.count() == 0


def content_client() -> APIClient:
    """A browser's `<img>`: no Authorization header."""
    return APIClient()


def test_owner_gets_the_exact_bytes_and_safe_headers(api):
    data = files.png()
    url = upload(api, "dot.png", data, "image/png").json()["url"]

    response = content_client().get(url)

    assert response.status_code == 200
    assert response.content == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Length"] == str(len(data))
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response["Content-Disposition"] == 'inline; filename="dot.png"'
    cache_control = {d.strip() for d in response["Cache-Control"].split(",")}
    assert cache_control == {"private", "max-age=3600"}


def test_text_is_served_as_a_download(api):
    data = "<script>alert(1)</script> naïve".encode()
    url = upload(api, "page.html", data, "text/html").json()["url"]

    response = content_client().get(url)

    assert response.status_code == 200
    assert response.content == data
    assert response["Content-Type"] == "text/html; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'
    assert response["Content-Security-Policy"] == "sandbox"


def assert_not_served(response):
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_expired_signature_is_not_served(api, user, monkeypatch):
    attachment_id = upload(api, "dot.png", files.png(), "image/png").json()["id"]
    two_hours_ago = signing.b62_encode(int(time.time()) - 7200)
    with monkeypatch.context() as travel:
        travel.setattr(signing.TimestampSigner, "timestamp", lambda self: two_hours_ago)
        old_url = signed_url(attachment_id=attachment_id, user_id=user.id)

    assert_not_served(content_client().get(old_url))
    # The same signature was good while it was young (the TTL is what refused it).
    assert (
        content_client().get(signed_url(attachment_id=attachment_id, user_id=user.id)).status_code
        == 200
    )


def test_forged_or_missing_signature_is_not_served(api):
    url = upload(api, "dot.png", files.png(), "image/png").json()["url"]
    path, query = url.split("?")
    params = {k: v[0] for k, v in parse_qs(query).items()}
    forged = params["s"][:-1] + ("A" if params["s"][-1] != "A" else "B")

    assert_not_served(content_client().get(path, {"t": params["t"], "s": forged}))
    assert_not_served(content_client().get(path))
    assert_not_served(content_client().get(path, {"t": "0", "s": params["s"]}))


def test_signature_for_another_user_or_attachment_is_not_served(api, user, other_user):
    first = upload(api, "a.png", files.png(), "image/png").json()["id"]
    second = upload(api, "b.png", files.png(3, 3), "image/png").json()["id"]

    # Signed for mallory: not the owner's signature.
    assert_not_served(content_client().get(signed_url(attachment_id=first, user_id=other_user.id)))
    # The first attachment's signature on the second's path.
    query = urlsplit(signed_url(attachment_id=first, user_id=user.id)).query
    assert_not_served(content_client().get(f"/api/chat/attachments/{second}/content/?{query}"))


def test_another_users_token_is_refused_even_with_a_valid_url(api, user, other_user):
    data = files.png()
    url = upload(api, "dot.png", data, "image/png").json()["url"]

    mallory = APIClient()
    mallory.credentials(HTTP_AUTHORIZATION=bearer(other_user))
    assert_not_served(mallory.get(url))

    assert api.get(url).content == data  # the owner's own token is fine


def test_detail_gives_a_fresh_url_to_the_owner_only(api, other_user):
    body = upload(api, "dot.png", files.png(), "image/png").json()

    mine = api.get(f"{UPLOAD}{body['id']}/")
    assert mine.status_code == 200
    assert {k: v for k, v in mine.json().items() if k != "url"} == {
        k: v for k, v in body.items() if k != "url"
    }
    assert content_client().get(mine.json()["url"]).status_code == 200

    mallory = APIClient()
    mallory.credentials(HTTP_AUTHORIZATION=bearer(other_user))
    assert mallory.get(f"{UPLOAD}{body['id']}/").status_code == 404
    assert mallory.delete(f"{UPLOAD}{body['id']}/").status_code == 404
    assert Attachment.objects.filter(pk=body["id"]).exists()


def test_delete_removes_row_and_file(api, media_root, django_capture_on_commit_callbacks):
    body = upload(api, "dot.png", files.png(), "image/png").json()
    assert len(files.stored_files(media_root)) == 1

    with django_capture_on_commit_callbacks(execute=True):
        response = api.delete(f"{UPLOAD}{body['id']}/")

    assert response.status_code == 204
    assert not Attachment.objects.filter(pk=body["id"]).exists()
    assert files.stored_files(media_root) == []
    assert_not_served(content_client().get(body["url"]))


def test_a_lost_file_is_a_404_not_a_500(api):
    body = upload(api, "dot.png", files.png(), "image/png").json()
    attachment = Attachment.objects.get(pk=body["id"])
    attachment.file.storage.delete(attachment.file.name)

    assert_not_served(content_client().get(body["url"]))


def test_uploads_are_rate_limited_per_user(api, other_user, settings, media_root, monkeypatch):
    from uuid import uuid4

    from attachments.throttling import AttachmentRateThrottle

    # Counters of its own, whatever earlier tests or runs left in a shared cache; an hour's window
    # so that no window ends during the test.
    monkeypatch.setattr(AttachmentRateThrottle, "group", f"attachments-test-{uuid4()}")
    settings.ATTACHMENT_RATE_LIMIT = "2/h"
    assert upload(api, "a.png", files.png(), "image/png").status_code == 201
    assert upload(api, "b.png", files.png(), "image/png").status_code == 201

    refused = upload(api, "c.png", files.png(), "image/png")

    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert int(refused["Retry-After"]) >= 1
    assert Attachment.objects.count() == 2 and len(files.stored_files(media_root)) == 2
    mallory = APIClient()
    mallory.credentials(HTTP_AUTHORIZATION=bearer(other_user))
    assert upload(mallory, "m.png", files.png(), "image/png").status_code == 201  # per user


def test_pdf_is_shown_inline_without_the_sandbox_that_would_block_its_viewer(api):
    data = files.pdf()
    url = upload(api, "r.pdf", data, "application/pdf").json()["url"]

    response = content_client().get(url)

    assert response.content == data
    assert response["Content-Type"] == "application/pdf"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"] == 'inline; filename="r.pdf"'
    assert "Content-Security-Policy" not in response
