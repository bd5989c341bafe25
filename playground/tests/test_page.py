"""The page at / and its static files, through Django's test clients (no browser)."""

from django.templatetags.static import static

SCRIPTS = [
    "app.js",
    "api.js",
    "stream.js",
    "ui.js",
    "chat.js",
    "markdown.js",
    "agents.js",
    "usage.js",
    "vendor/marked.esm.js",
    "vendor/purify.es.js",
]


def test_root_serves_the_playground_page(client):
    response = client.get("/")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    page = response.content.decode()
    assert f'<script type="module" src="{static("playground/app.js")}">' in page
    assert static("playground/playground.css") in page


async def test_static_files_are_served(async_client):
    """servestatic serves them (an async response, so read it with the async client)."""
    for name in [*SCRIPTS, "playground.css"]:
        response = await async_client.get(static(f"playground/{name}"))

        assert response.status_code == 200, name
        body = b"".join([chunk async for chunk in response.streaming_content])
        assert body, name
        if name.endswith(".js"):  # browsers refuse a module script served with another type
            assert response["Content-Type"].startswith("text/javascript"), name
