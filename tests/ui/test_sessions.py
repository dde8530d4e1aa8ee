"""Sign-in sessions over HTTP against a real server: the cookie's flags, CSRF on every change,
a revoked token ending its sessions, and no change through GET."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from herder.api.sessions import Sessions
from tests.servers import wait_for
from tests.ui.conftest import ADMIN_SECRET, Site

pytestmark = pytest.mark.acceptance
_clients: list[httpx.Client] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def client_of(site: Site, **options: object) -> httpx.Client:
    client = httpx.Client(base_url=site.url, timeout=30, **options)  # type: ignore[arg-type]
    _clients.append(client)
    return client


def signed_in(site: Site, token: str) -> tuple[httpx.Client, httpx.Response]:
    client = client_of(site)
    answer = client.post("/api/v1/session", json={"token": token})
    assert answer.status_code == 200, answer.text
    return client, answer


def test_sign_in_sets_a_strict_http_only_cookie_and_a_readable_csrf_one(site: Site) -> None:
    client, answer = signed_in(site, ADMIN_SECRET)
    cookies = answer.headers.get_list("set-cookie")
    session = next(c for c in cookies if c.startswith("herder_session="))
    csrf = next(c for c in cookies if c.startswith("herder_csrf="))
    for flag in ("HttpOnly", "SameSite=strict", "Path=/", "Max-Age="):
        assert flag.lower() in session.lower(), session
    assert "httponly" not in csrf.lower() and "samesite=strict" in csrf.lower()
    assert "secure" not in session.lower()  # plain http here; https adds Secure
    assert ADMIN_SECRET not in session  # the cookie never carries the token
    assert answer.json()["csrf_token"] == client.cookies["herder_csrf"]
    me = client.get("/api/v1/whoami").json()
    assert me["name"] == "HERDER_ADMIN_TOKEN" and me["role"] == "admin"
    assert answer.headers["cache-control"] == "no-store"


def test_a_change_needs_the_csrf_header(site: Site) -> None:
    site.job(name="csrf-target", command="true")
    client, answer = signed_in(site, ADMIN_SECRET)
    refused = client.post("/api/v1/jobs/csrf-target/runs", json={})
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "csrf_failed" and "X-CSRF-Token" in error["message"]
    wrong = client.post("/api/v1/jobs/csrf-target/runs", json={},
                        headers={"X-CSRF-Token": "0" * 40})
    assert wrong.status_code == 403
    assert site.admin.get("/api/v1/runs", params={"job": "csrf-target"}).json()["items"] == []
    made = client.post("/api/v1/jobs/csrf-target/runs", json={},
                       headers={"X-CSRF-Token": answer.json()["csrf_token"]})
    assert made.status_code == 201, made.text
    assert made.json()["submitter"] == "HERDER_ADMIN_TOKEN"


def test_a_csrf_value_of_another_session_is_refused(site: Site) -> None:
    site.job(name="csrf-other", command="true")
    first, _ = signed_in(site, ADMIN_SECRET)
    _, second = signed_in(site, ADMIN_SECRET)
    refused = first.post("/api/v1/jobs/csrf-other/runs", json={},
                         headers={"X-CSRF-Token": second.json()["csrf_token"]})
    assert refused.status_code == 403


def test_tokens_in_headers_need_no_csrf(site: Site) -> None:
    site.job(name="csrf-free", command="true")
    assert site.admin.post("/api/v1/jobs/csrf-free/runs", json={}).status_code == 201


def test_revoking_the_token_ends_its_sessions(site: Site) -> None:
    token_id, token = site.token("ui-revoked", role="operator")
    client, _ = signed_in(site, token)
    assert client.get("/api/v1/whoami").json()["name"] == "ui-revoked"
    assert site.admin.delete(f"/api/v1/tokens/{token_id}").status_code == 200
    answer = client.get("/api/v1/whoami")
    assert answer.status_code == 401
    assert "was revoked" in answer.json()["error"]["message"]


def test_an_expired_token_ends_its_session_with_it(site: Site) -> None:
    made = site.admin.post("/api/v1/tokens", json={"name": "ui-brief", "namespace": "*",
                                                   "role": "viewer", "expires_in": 2})
    client, answer = signed_in(site, made.json()["token"])
    expires = datetime.fromisoformat(answer.json()["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(seconds=3)
    wait_for(lambda: client.get("/api/v1/whoami").status_code == 401, timeout=10,
             what="the session to end with its token")


def test_a_tampered_or_foreign_cookie_is_refused(site: Site) -> None:
    client, _ = signed_in(site, ADMIN_SECRET)
    good = client.cookies["herder_session"]
    head, _, signature = good.rpartition(".")
    bad = head + "." + ("0" if signature[0] != "0" else "1") + signature[1:]
    forged = Sessions(lambda: b"k" * 32).issue(
        token_id=0, bound="x", expires_at=datetime.now(UTC) + timedelta(hours=1))
    for cookie in (bad, forged, "garbage", head):
        stranger = client_of(site, cookies={"herder_session": cookie})
        assert stranger.get("/api/v1/whoami").status_code == 401, cookie


def test_sign_in_refuses_bad_tokens_and_forms(site: Site) -> None:
    client = client_of(site)
    assert client.post("/api/v1/session", json={"token": "herder_1_nope"}).status_code == 401
    form = client.post("/api/v1/session", data={"token": ADMIN_SECRET})
    assert form.status_code in (415, 422) and "session" not in str(form.cookies)


def test_sign_out_clears_both_cookies(site: Site) -> None:
    client, _ = signed_in(site, ADMIN_SECRET)
    out = client.delete("/api/v1/session")
    assert out.status_code == 204
    cleared = out.headers.get_list("set-cookie")
    assert any(c.startswith("herder_session=") and "Max-Age=0" in c for c in cleared)
    assert client.get("/api/v1/whoami").status_code == 401


def test_sign_in_is_audited(site: Site) -> None:
    _, token = site.token("ui-audited", role="viewer")
    signed_in(site, token)

    def entry() -> bool:
        found = site.admin.get("/api/v1/audit", params={"action": "session.create",
                                                        "actor": "ui-audited"}).json()
        return bool(found["items"])

    wait_for(entry, timeout=10, what="the sign-in's audit entry")


def test_no_change_through_get(site: Site) -> None:
    """Every route that changes state refuses GET: a link or an <img> cannot change anything."""
    routes = site.admin.get("/openapi.json").json()["paths"]
    changing = {path for path, methods in routes.items()
                if set(methods) & {"post", "put", "patch", "delete"}}
    both = {path for path in changing if "get" in routes[path]}
    # Where a path also answers GET it is the read of the same object, never a change.
    for path in both:
        assert routes[path]["get"]["operationId"].startswith(("get_", "list_", "search_",
                                                              "whoami")), path
    for path in ("/api/v1/jobs/{ref}/runs", "/api/v1/runs/{run_id}/cancel",
                 "/api/v1/session"):
        assert path in changing and "get" not in routes[path]
    site.job(name="get-proof", command="true")
    client, _ = signed_in(site, ADMIN_SECRET)
    for path in ("/api/v1/jobs/get-proof/disable", "/api/v1/session"):
        client.get(path)
    assert site.admin.get("/api/v1/jobs/get-proof").json()["enabled"] is True
    assert site.admin.get("/api/v1/runs", params={"job": "get-proof"}).json()["items"] == []


def test_an_open_server_needs_no_sign_in(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.acceptance.conftest import short_dir
    from tests.servers import Server

    server = Server(short_dir() / "data").start()
    try:
        assert server.client.get("/api/v1/whoami").json()["authentication"] == "off"
        refused = server.client.post("/api/v1/session", json={"token": "anything-at-all"})
        assert refused.status_code == 409 and "open" in refused.json()["error"]["message"]
    finally:
        server.close()


def test_a_change_from_another_site_is_refused_also_on_an_open_server() -> None:
    """An open server has no cookie to protect: a page of another site must not reach it."""
    from tests.acceptance.conftest import short_dir
    from tests.servers import Server

    server = Server(short_dir() / "data").start()
    try:
        server.create_job(name="victim", command="true")
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Sec-Fetch-Site": "cross-site"}):
            refused = server.client.post("/api/v1/jobs/victim/runs", headers=headers)
            assert refused.status_code == 403, headers
            assert refused.json()["error"]["code"] == "csrf_failed"
        assert server.client.get("/api/v1/runs").json()["items"] == []
        same = server.client.post("/api/v1/jobs/victim/runs",
                                  headers={"Origin": server.url, "Sec-Fetch-Site": "same-origin"})
        assert same.status_code == 201, same.text
        assert server.client.get("/api/v1/jobs", headers={"Origin": "http://evil.example"}
                                 ).status_code == 200  # reads are not refused
    finally:
        server.close()
