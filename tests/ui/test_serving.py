"""How the server hands out the UI: at ``/``, from the package, with its security headers,
and without getting in the way of the API and its docs."""

from __future__ import annotations

import httpx
import pytest

from herder.ui.serve import CSP, assets
from tests.ui.conftest import Site

pytestmark = pytest.mark.acceptance


def test_the_page_and_its_assets_carry_the_security_headers(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:  # no token: the shell is public
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert page.headers["content-security-policy"] == CSP
        assert "'unsafe-inline'" not in CSP and "frame-ancestors 'none'" in CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "same-origin"
        assert "<script" in page.text and "<script>" not in page.text  # no inline script
        assert "style=" not in page.text
        script = client.get("/ui/app.js")
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == CSP
        again = client.get("/ui/app.js", headers={"If-None-Match": script.headers["etag"]})
        assert again.status_code == 304
        squeezed = client.get("/ui/app.css", headers={"Accept-Encoding": "gzip"})
        assert squeezed.headers["content-encoding"] == "gzip"


def test_unknown_ui_paths_serve_the_page_and_the_api_keeps_its_answers(site: Site) -> None:
    with httpx.Client(base_url=site.url) as client:
        for path in ("/ui/", "/ui/runs/12", "/ui/%2e%2e/%2e%2e/secret.key",
                     "/ui/pages%2f..%2f..%2fherder.db"):
            answer = client.get(path)
            assert answer.status_code == 200 and "<main" in answer.text, path
        missing = client.get("/api/v1/nothing-here")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        assert client.get("/openapi.json").status_code == 200
        assert client.get("/docs").status_code == 200
        assert "content-security-policy" not in client.get("/docs").headers
        assert client.get("/healthz").json()["status"] == "ok"


def test_no_inline_script_or_style_in_any_asset() -> None:
    """The policy allows neither; and data goes into the page as text, never as HTML."""
    files = assets()
    assert {"index.html", "app.js", "app.css", "pages/run.js", "graph.js"} <= set(files)
    for name, asset in files.items():
        text = asset.body.decode()
        if name.endswith(".js"):
            for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                          "eval(", "new Function"):
                assert risky not in text, (name, risky)
        if name.endswith(".html"):
            assert "style=" not in text and "onclick" not in text
