"""The services the chat turn uses: file parts from useChat, the bytes for the model, deletion."""

import pytest
from django.core.files.storage import InMemoryStorage

from attachments import services
from attachments.models import Attachment
from attachments.selectors import file_parts, recent_files
from attachments.signing import signed_url
from core.errors import ServiceError
from llm.types import FilePart

from . import files

pytestmark = pytest.mark.django_db


def file_part(url: str, media_type: str = "image/png", **extra) -> dict:
    return {"type": "file", "mediaType": media_type, "url": url, **extra}


def refused(user, part: dict, fragment: str, media_root) -> None:
    with pytest.raises(ServiceError) as caught:
        services.attachment_from_part(user=user, part=part)
    assert caught.value.status == 400
    assert fragment in caught.value.message
    assert Attachment.objects.count() == 0
    assert files.stored_files(media_root) == []


def test_data_url_part_is_stored(user, media_root):
    data = files.png()
    part = file_part(files.data_url("image/png", data), filename="C:\\pics\\dot.png")

    attachment = services.attachment_from_part(user=user, part=part)

    assert (attachment.user_id, attachment.media_type, attachment.size) == (
        user.id,
        "image/png",
        len(data),
    )
    assert attachment.filename == "dot.png"  # the client's path is dropped
    [stored] = files.stored_files(media_root)
    assert stored.read_bytes() == data


def test_data_url_whose_bytes_are_not_its_type_is_refused(user, media_root):
    part = file_part(files.data_url("image/png", files.pdf()))
    refused(user, part, "not image/png (it looks like application/pdf)", media_root)


def test_data_url_type_must_agree_with_the_parts(user, media_root):
    part = file_part(files.data_url("application/pdf", files.pdf()), media_type="image/png")
    refused(user, part, "differs from its data: URL", media_root)


def test_data_url_with_bad_base64_is_refused(user, media_root):
    refused(user, file_part("data:image/png;base64,iVBOR*w0K"), "base64 is invalid", media_root)


def test_oversized_data_url_is_refused_before_decoding(user, media_root, settings):
    settings.ATTACHMENT_MAX_BYTES = 1000
    # Invalid base64 at the end: decoding it would have said so.
    part = file_part("data:image/png;base64," + "A" * 3999 + "*")
    refused(user, part, "larger than the limit", media_root)


def test_oversized_bytes_are_refused_by_the_service_itself(user, media_root, settings):
    settings.ATTACHMENT_MAX_BYTES = 10
    with pytest.raises(ServiceError, match="larger than the limit of 10 bytes"):
        services.create_attachment(user=user, data=b"x" * 11, media_type="text/plain")
    assert files.stored_files(media_root) == []
    assert services.create_attachment(user=user, data=b"x" * 10, media_type="text/plain").size == 10


def test_percent_encoded_data_url(user):
    part = file_part("data:,hello%20w%C3%B6rld", media_type="text/plain", filename="h.txt")
    attachment = services.attachment_from_part(user=user, part=part)
    assert attachment.file.read() == "hello wörld".encode()
    assert attachment.media_type == "text/plain"


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/cat.png",
        "http://169.254.169.254/latest/meta-data/",
        "HTTPS://example.com/api/chat/nothing/",
    ],
)
def test_remote_url_is_not_fetched(user, media_root, url):
    refused(user, file_part(url), "Remote URLs are not fetched", media_root)


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "ftp://x/y.png"])
def test_other_schemes_are_refused(user, media_root, url):
    refused(user, file_part(url), "are not accepted", media_root)


def test_unknown_relative_url_is_refused(user, media_root):
    refused(user, file_part("/static/cat.png"), "neither a data: URL", media_root)


def test_not_a_file_part_is_refused(user, media_root):
    refused(user, {"type": "text", "text": "hi"}, "Not a file part", media_root)
    refused(user, {"type": "file", "mediaType": "image/png"}, "has no url", media_root)


def test_own_upload_is_found_by_any_of_its_urls(user):
    attachment = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    urls = [
        f"/api/chat/attachments/{attachment.id}/",
        signed_url(attachment_id=attachment.id, user_id=user.id),
        # An old, expired signed URL from the chat's history still names the user's own upload.
        f"/api/chat/attachments/{attachment.id}/content/?t=0&s=expired",
        f"http://localhost:8000/api/chat/attachments/{attachment.id}/content/?t=1&s=2",
    ]
    for url in urls:
        assert services.attachment_from_part(user=user, part=file_part(url)) == attachment
    assert Attachment.objects.count() == 1


def test_another_users_upload_is_an_unknown_attachment(user, other_user):
    theirs = services.create_attachment(user=other_user, data=files.png(), media_type="image/png")
    for url in [
        f"/api/chat/attachments/{theirs.id}/",
        signed_url(attachment_id=theirs.id, user_id=other_user.id),
    ]:
        with pytest.raises(ServiceError) as caught:
            services.attachment_from_part(user=user, part=file_part(url))
        assert caught.value.status == 400
        assert caught.value.message == "The file part refers to an unknown attachment."
    assert list(Attachment.objects.values_list("user_id", flat=True)) == [other_user.id]


@pytest.mark.parametrize(
    ("declared", "data", "stored_as"),
    [
        ("image/jpeg", files.jpeg_header(), "image/jpeg"),
        ("image/jpg", files.jpeg_header(), "image/jpeg"),
        ("audio/x-wav", files.wav(), "audio/wav"),
        ("Text/Markdown; charset=utf-8", "# Títle\n".encode(), "text/markdown"),
        ("text/csv", b"a,b\n1,2\n", "text/csv"),
    ],
)
def test_accepted_kinds(user, declared, data, stored_as):
    attachment = services.create_attachment(user=user, data=data, media_type=declared)
    assert attachment.media_type == stored_as


def test_text_that_is_not_utf8_is_refused(user, media_root):
    with pytest.raises(ServiceError, match="UTF-8"):
        services.create_attachment(
            user=user, data="café".encode("latin-1"), media_type="text/plain"
        )
    assert files.stored_files(media_root) == []


def test_allow_list_comes_from_settings(user, settings):
    settings.ATTACHMENT_MEDIA_TYPES = ["text/plain"]
    with pytest.raises(ServiceError, match="Accepted types: text/plain"):
        services.create_attachment(user=user, data=files.png(), media_type="image/png")


def test_file_parts_reads_the_stored_bytes(user):
    png = services.create_attachment(
        user=user, data=files.png(), media_type="image/png", filename="a.png"
    )
    pdf = services.create_attachment(user=user, data=files.pdf(), media_type="application/pdf")

    parts = file_parts(
        ids=[str(png.id), pdf.id, "not-a-uuid", "00000000-0000-0000-0000-000000000000"]
    )

    assert parts == {
        str(png.id): FilePart("image/png", files.png(), key=str(png.id), filename="a.png"),
        str(pdf.id): FilePart("application/pdf", files.pdf(), key=str(pdf.id), filename=""),
    }


def test_delete_attachments_removes_rows_and_files(
    user, other_user, media_root, django_capture_on_commit_callbacks
):
    mine = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    theirs = services.create_attachment(
        user=other_user, data=files.pdf(), media_type="application/pdf"
    )

    with django_capture_on_commit_callbacks(execute=True):
        # Scoped to `user`: their own id in the list is not deleted.
        assert services.delete_attachments(ids=[mine.id, str(theirs.id)], user=user) == 1

    assert list(Attachment.objects.all()) == [theirs]
    assert [p.name for p in files.stored_files(media_root)] == [f"{theirs.id}.pdf"]

    with django_capture_on_commit_callbacks(execute=True):
        assert services.delete_attachments(ids=[theirs.id]) == 1
    assert files.stored_files(media_root) == []


def test_deleting_a_user_removes_their_files(user, media_root, django_capture_on_commit_callbacks):
    services.create_attachment(user=user, data=files.png(), media_type="image/png")
    with django_capture_on_commit_callbacks(execute=True):
        user.delete()
    assert Attachment.objects.count() == 0
    assert files.stored_files(media_root) == []


def test_a_rolled_back_deletion_keeps_the_file(
    user, media_root, django_capture_on_commit_callbacks
):
    from django.db import transaction

    attachment = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            attachment.delete()
            raise RuntimeError("rolled back")
    assert callbacks == []
    assert Attachment.objects.count() == 1
    assert len(files.stored_files(media_root)) == 1


def test_row_failure_leaves_no_file(user, media_root, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(Attachment, "save", fail)
    with pytest.raises(RuntimeError):
        services.create_attachment(user=user, data=files.png(), media_type="image/png")
    assert files.stored_files(media_root) == []


def test_any_configured_storage_keeps_the_files(user, settings, media_root):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.InMemoryStorage"},
    }
    attachment = services.create_attachment(
        user=user, data=files.pdf(), media_type="application/pdf"
    )
    storage = attachment.file.storage

    assert isinstance(storage, InMemoryStorage)
    assert storage.exists(attachment.file.name)
    assert file_parts(ids=[attachment.id])[str(attachment.id)].data == files.pdf()
    assert files.stored_files(media_root) == []  # nothing on the local disk


@pytest.mark.parametrize(
    ("declared", "filename", "data", "stored_as"),
    [
        ("", "photo", files.png(), "image/png"),  # the bytes say it
        ("application/octet-stream", "notes.md", b"# hi\n", "text/markdown"),  # the name says it
        ("", "clip.wav", files.wav(), "audio/wav"),
    ],
)
def test_an_unspecified_type_is_found_and_still_checked(user, declared, filename, data, stored_as):
    attachment = services.create_attachment(
        user=user, data=data, media_type=declared, filename=filename
    )
    assert attachment.media_type == stored_as


def test_an_unspecified_type_that_is_nothing_allowed_is_refused(user, media_root):
    with pytest.raises(ServiceError, match="type application/zip are not accepted"):
        services.create_attachment(
            user=user, data=b"PK\x03\x04" + b"\x00" * 40, media_type="", filename="a.txt"
        )
    with pytest.raises(ServiceError, match="type unknown are not accepted"):
        services.create_attachment(user=user, data=b"\x00\x01", media_type="", filename="blob")
    assert files.stored_files(media_root) == []


def test_octet_stream_data_url_takes_the_parts_type(user):
    part = file_part(files.data_url("application/octet-stream", b"a,b\n"), media_type="text/csv")
    assert services.attachment_from_part(user=user, part=part).media_type == "text/csv"


def test_a_lost_file_is_left_out_of_file_parts(user):
    attachment = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    attachment.file.storage.delete(attachment.file.name)
    assert file_parts(ids=[attachment.id]) == {}


def test_file_parts_reads_the_whole_file_whatever_its_row_says(user, settings):
    """Local files are read with the size their row records: a file that is larger than that
    (replaced in the storage) is still read whole, and one that is smaller is not padded."""
    recent_files.clear()
    grown = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    shrunk = services.create_attachment(user=user, data=files.pdf(), media_type="application/pdf")
    Attachment.objects.filter(pk=grown.pk).update(size=10)
    Attachment.objects.filter(pk=shrunk.pk).update(size=len(files.pdf()) * 3)

    parts = file_parts(ids=[grown.pk, shrunk.pk])

    assert parts[str(grown.pk)].data == files.png()
    assert parts[str(shrunk.pk)].data == files.pdf()


def test_system_check_warns_about_types_it_cannot_check(settings):
    from attachments.checks import media_types_can_be_checked

    settings.ATTACHMENT_MEDIA_TYPES = ["image/png", "Text/CSV", "video/x-unknown"]
    [warning] = media_types_can_be_checked(None)
    assert warning.id == "attachments.W001"
    assert "video/x-unknown" in warning.msg and "image/png" not in warning.msg

    settings.ATTACHMENT_MEDIA_TYPES = ["image/png", "audio/wav", "image/heif", "text/csv"]
    assert media_types_can_be_checked(None) == []


def test_recent_files_are_bounded_and_forget_a_deleted_attachment(user, settings, media_root):
    from attachments.selectors import recent_files

    settings.ATTACHMENT_CACHE_BYTES = 4000
    recent_files.clear()
    for key in "abcd":
        recent_files.put(FilePart(media_type="text/plain", data=b"x" * 1000, key=key))
    recent_files.put(FilePart(media_type="text/plain", data=b"y" * 1000, key="e"))
    found, missing = recent_files.get_many(["a", "b", "e"])
    assert (sorted(found), missing) == (["b", "e"], ["a"])  # the least recently used went
    recent_files.put(FilePart(media_type="text/plain", data=b"z" * 1001, key="big"))
    assert recent_files.get_many(["big"]) == ({}, ["big"])  # over a quarter: not kept

    attachment = services.create_attachment(user=user, data=files.png(), media_type="image/png")
    parts = file_parts(ids=[attachment.pk])
    assert recent_files.get_many([str(attachment.pk)])[0] == parts
    attachment.delete()
    assert recent_files.get_many([str(attachment.pk)]) == ({}, [str(attachment.pk)])
