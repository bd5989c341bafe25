"""Through uvicorn and the whole ASGI stack: a multi-megabyte upload is accepted (the request body
limit allows uploads more than other requests), and its signed URL serves the exact bytes."""

import hashlib

import httpx

from attachments.models import Attachment
from conftest import bearer

from . import files


def test_large_upload_and_its_content_over_real_http(live_server_url, user, media_root):
    data = files.png() + bytes(range(256)) * (3 * 4096)  # a PNG with 3 MiB after its end
    with httpx.Client(base_url=live_server_url, timeout=30) as client:
        created = client.post(
            "/api/chat/attachments/",
            headers={"Authorization": bearer(user)},
            files={"file": ("big.png", data, "image/png")},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["size"] == len(data)

        served = client.get(body["url"])  # no token: the signature alone

    assert served.status_code == 200
    assert served.content == data
    assert served.headers["content-type"] == "image/png"
    assert served.headers["content-security-policy"] == "sandbox"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert Attachment.objects.get().sha256 == hashlib.sha256(data).hexdigest()
