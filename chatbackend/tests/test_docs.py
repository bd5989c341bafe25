"""The API docs page (/api/docs/, Swagger UI) works offline: the app serves its scripts and styles,
and the page names no other host."""

import re
from urllib.parse import urljoin, urlsplit

import httpx

#: URLs in the page: attributes, and string literals in its inline script.
URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|["'](https?://[^"']+|//[^"']+)["']""")


def urls_in(html: str) -> list[str]:
    return [attribute or literal for attribute, literal in URL.findall(html)]


def test_docs_page_references_no_other_host_and_its_assets_are_served(live_server_url):
    with httpx.Client(base_url=live_server_url, timeout=10) as client:
        page = client.get("/api/docs/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")

        urls = [urljoin(f"{live_server_url}/api/docs/", url) for url in urls_in(page.text)]
        hosts = {urlsplit(url).netloc for url in urls}
        assert hosts == {urlsplit(live_server_url).netloc}, urls

        assets = [url for url in urls if urlsplit(url).path.endswith((".js", ".css"))]
        names = sorted(urlsplit(url).path.rsplit("/", 1)[-1] for url in assets)
        assert names == [
            "swagger-ui-bundle.js",
            "swagger-ui-standalone-preset.js",
            "swagger-ui.css",
        ]
        for url in assets:
            asset = client.get(url)
            assert asset.status_code == 200, url
            kind = "text/css" if url.endswith(".css") else "javascript"
            assert kind in asset.headers["content-type"], (url, asset.headers["content-type"])
            assert len(asset.content) > 10_000, url  # the real bundle, not an error page

        # The schema the page loads is ours, on this host.
        schema = client.get("/api/schema/", headers={"Accept": "application/json"})
        assert schema.status_code == 200
        assert schema.json()["info"]["title"] == "Chat backend API"
