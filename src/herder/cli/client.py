"""A small httpx client of the herder REST API.

Foreign errors are translated at this edge: whatever goes wrong (the server is down, the URL is
wrong, the API refuses) surfaces as one ``CliError`` whose message says what to do next.

    CliError            message for stderr, exit_code for the shell (1, or 2 for bad input)
    └── ApiError        the API answered an error status: status, code, details
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

import httpx

from herder import __version__

DEFAULT_URL = "http://127.0.0.1:4004"
API = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# A followed log may stay quiet for as long as the run does: never time out between chunks.
STREAM_TIMEOUT = httpx.Timeout(None, connect=5.0)
_MAX_DETAIL_LINES = 8


class CliError(Exception):
    """A failure shown to the user as its message; the process exits with ``exit_code``."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


class ApiError(CliError):
    """The API answered with an error status (the documented ``{"error": …}`` body or not)."""

    def __init__(
        self, message: str, *, status: int, code: str | None = None, details: Any = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.details = details


def normalize_url(url: str) -> str:
    """``host:port`` and trailing slashes are accepted; anything but http(s) is a usage error."""
    text = url.strip().rstrip("/")
    if text and "://" not in text:
        text = f"http://{text}"
    try:
        parsed = httpx.URL(text)
    except (httpx.InvalidURL, TypeError) as exc:
        raise _bad_url(url) from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise _bad_url(url)
    return text


def _bad_url(url: str) -> CliError:
    return CliError(
        f"{url[:200]!r} is not a server URL; give --server or HERDER_URL like {DEFAULT_URL}",
        exit_code=2,
    )


OBJECT_FORMS = "an id, a name or namespace/name"


def object_path(kind: str, ref: str, *suffix: str, forms: str = OBJECT_FORMS) -> str:
    """The API path of an object of ``kind`` (job, workflow, lock) given as ``ref``: an id,
    ``namespace/name`` or a name in ``default`` (``forms`` says which of these the error
    message offers)."""
    parts = ref.split("/")
    if not ref or len(parts) > 2 or any(p in ("", ".", "..") for p in parts):
        raise CliError(f"{ref[:100]!r} is not a {kind} reference; give {forms}", exit_code=2)
    return "/".join([f"{API}/{kind}s", quote(ref, safe="/"), *suffix])


def job_path(ref: str, *suffix: str) -> str:
    """The API path of a job given as an id, ``namespace/name`` or a name in ``default``."""
    return object_path("job", ref, *suffix)


def run_path(run_id: int, *suffix: str) -> str:
    return "/".join([f"{API}/runs", str(run_id), *suffix])


def workflow_run_path(run_id: int, *suffix: str) -> str:
    return "/".join([f"{API}/workflow-runs", str(run_id), *suffix])


class Client:
    """One connection pool to one server; use it as a context manager."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        token: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = normalize_url(base_url)
        headers = {"User-Agent": f"herder-cli/{__version__}", "Accept": "application/json"}
        if token is None:
            token = os.environ.get("HERDER_TOKEN") or None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, timeout=TIMEOUT, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # -- the transport, with errors translated ------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """Send one request; answer the decoded JSON body (``None`` for an empty one)."""
        return self._decoded(self.send(method, path, params=params, json=json))

    def send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send one request; answer the response, an ``ApiError`` for an error status."""
        with self._translated():
            response = self._http.request(method, path, params=_clean(params), json=json)
        if response.is_error:
            raise self._api_error(response)
        return response

    def _decoded(self, response: httpx.Response) -> Any:
        method, path = response.request.method, response.request.url.path
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise CliError(
                f"the server at {self.base_url} answered {method} {path} with something "
                "that is not JSON; is --server / HERDER_URL pointing at a herder server?"
            ) from exc

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, json: Any = None) -> Any:
        return self.request("POST", path, json=json if json is not None else {})

    @contextmanager
    def stream(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[Iterator[bytes]]:
        """Yield the body's chunks as they arrive, with no read timeout between them."""
        with self._translated():
            with self._http.stream(
                "GET",
                path,
                params=_clean(params),
                timeout=STREAM_TIMEOUT,
                headers={"Accept": "text/plain"},
            ) as response:
                if response.is_error:
                    response.read()
                    raise self._api_error(response)
                yield response.iter_bytes()

    @contextmanager
    def _translated(self) -> Iterator[None]:
        url = self.base_url
        try:
            yield
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(
                f"cannot reach the herder server at {url}: is it running? start it with "
                "`herder server`, or point --server / HERDER_URL at it"
            ) from exc
        except httpx.TimeoutException as exc:
            raise CliError(f"the herder server at {url} did not answer in time ({exc})") from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise _bad_url(url) from exc
        except httpx.HTTPError as exc:
            raise CliError(f"talking to the herder server at {url} failed: {exc}") from exc

    def _api_error(self, response: httpx.Response) -> ApiError:
        status = response.status_code
        request = response.request
        try:
            body = response.json()
        except ValueError:
            body = None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            message = str(error.get("message") or code or f"HTTP {status}")
            details = error.get("details")
            lines = [message, *_detail_lines(details)]
            if status == 401:
                lines.append("set HERDER_TOKEN to a valid API token (an admin makes one with "
                             "`herder token create`; the first comes from `herder token "
                             "bootstrap`)")
            elif status == 403:
                lines.append("the token in HERDER_TOKEN is not allowed to do this; `herder "
                             "whoami` shows what it may do")
            return ApiError(
                "\n".join(lines),
                status=status,
                code=code if isinstance(code, str) else None,
                details=details,
            )
        # Not herder's error shape: a framework default, a proxy, or an older server.
        detail = body.get("detail") if isinstance(body, dict) else None
        text = detail if isinstance(detail, str) else response.reason_phrase or f"HTTP {status}"
        lines = [f"the server answered {status} to {request.method} {request.url.path}: {text}"]
        lines.extend(_detail_lines(detail if isinstance(detail, list) else None))
        if status in (404, 405) and detail is not None:
            lines.append(f"the server may be older than this CLI (herder {__version__})")
        return ApiError("\n".join(lines), status=status, details=detail)

    # -- the API, one method per route the CLI uses --------------------------------------------

    def create_job(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", f"{API}/jobs", json=dict(body)))

    def get_job(self, ref: str) -> dict[str, Any]:
        return _object(self.get(job_path(ref)))

    def find(self, kind: str, ref: str) -> dict[str, Any] | None:
        """The job, workflow or namespace (``kind``), or ``None`` when the server has none by
        that reference."""
        try:
            return _object(self.get(object_path(kind, ref)))
        except ApiError as exc:
            if exc.status == 404 and exc.code == "not_found":
                return None
            raise

    def put(self, kind: str, ref: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """``PUT /{kind}s/{ref}``: create or replace; answers the object and whether it was
        created."""
        response = self.send("PUT", object_path(kind, ref), json=dict(body))
        return _object(self._decoded(response)), response.status_code == 201

    def create_workflow(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return _object(self.request("POST", f"{API}/workflows", json=dict(body)))

    def get_workflow(self, ref: str) -> dict[str, Any]:
        return _object(self.get(object_path("workflow", ref)))

    def list_workflows(
        self, params: Mapping[str, Any], *, all_pages: bool = False
    ) -> dict[str, Any]:
        return self.pages(f"{API}/workflows", params, all_pages=all_pages)

    def start_workflow_run(self, ref: str, *, params: Mapping[str, str]) -> dict[str, Any]:
        return _object(self.post(object_path("workflow", ref, "runs"), {"params": dict(params)}))

    def list_workflow_runs(
        self, params: Mapping[str, Any], *, all_pages: bool = False
    ) -> dict[str, Any]:
        return self.pages(f"{API}/workflow-runs", params, all_pages=all_pages)

    def get_workflow_run(self, run_id: int) -> dict[str, Any]:
        """The workflow run with its ``steps``."""
        return _object(self.get(workflow_run_path(run_id)))

    def workflow_run_graph(self, run_id: int) -> dict[str, Any]:
        """``{run, nodes, edges}``: the run as a graph with live statuses."""
        return _object(self.get(workflow_run_path(run_id, "graph")))

    def control_workflow_run(
        self, run_id: int, action: str, *, step: str | None = None
    ) -> dict[str, Any]:
        """``pause``, ``resume``, ``cancel``, ``rerun`` the run, or with ``step`` ``skip``,
        ``retry``, ``approve``, ``reject`` one of its steps; answers the workflow run (for
        ``rerun``, the new one)."""
        if step is None:
            return _object(self.post(workflow_run_path(run_id, action)))
        return _object(self.post(workflow_run_path(run_id, "steps", quote(step, safe=""),
                                                   action)))

    def delete(self, kind: str, ref: str) -> None:
        """``DELETE /{kind}s/{ref}`` (a job or a workflow)."""
        self.request("DELETE", object_path(kind, ref))

    def set_enabled(self, kind: str, ref: str, enabled: bool) -> dict[str, Any]:
        """``POST /{kind}s/{ref}/enable|disable`` (a job or a workflow); answers the object."""
        return _object(self.post(object_path(kind, ref, "enable" if enabled else "disable")))

    def start_run(
        self, ref: str, *, params: Mapping[str, str], env: Mapping[str, str],
        manual: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"params": dict(params), "env": dict(env)}
        if manual:
            body["manual_start"] = True
        return _object(self.post(job_path(ref, "runs"), body))

    def approve_run(self, run_id: int) -> dict[str, Any]:
        return _object(self.post(run_path(run_id, "approve")))

    def put_run_file(self, run_id: int, name: str, content: IO[bytes]) -> dict[str, Any]:
        """``PUT /runs/{id}/files/{name}``: the file's bytes streamed as the body."""
        path = run_path(run_id, "files", quote(name, safe=""))
        with self._translated():
            response = self._http.put(path, content=content)
        if response.is_error:
            raise self._api_error(response)
        return _object(self._decoded(response))

    def upload_bundle(
        self, filename: str, content: IO[bytes], *, entrypoint: str | None
    ) -> tuple[dict[str, Any], bool]:
        """``POST /bundles`` (multipart); answers the bundle and whether it is new."""
        data = {"entrypoint": entrypoint} if entrypoint else None
        with self._translated():
            response = self._http.post(
                f"{API}/bundles", files={"file": (filename, content)}, data=data,
                timeout=STREAM_TIMEOUT,
            )
        if response.is_error:
            raise self._api_error(response)
        return _object(self._decoded(response)), response.status_code == 201

    def get_bundle(self, bundle_id: str) -> dict[str, Any]:
        return _object(self.get(f"{API}/bundles/{quote(bundle_id, safe='')}"))

    def list_jobs(self, params: Mapping[str, Any], *, all_pages: bool = False) -> dict[str, Any]:
        return self.pages(f"{API}/jobs", params, all_pages=all_pages)

    def list_runs(self, params: Mapping[str, Any], *, all_pages: bool = False) -> dict[str, Any]:
        return self.pages(f"{API}/runs", params, all_pages=all_pages)

    def get_run(self, run_id: int) -> dict[str, Any]:
        return _object(self.get(run_path(run_id)))

    def cancel_run(self, run_id: int, *, force: bool) -> dict[str, Any]:
        return _object(self.post(run_path(run_id, "cancel"), {"force": force}))

    def retry_run(self, run_id: int) -> dict[str, Any]:
        return _object(self.post(run_path(run_id, "retry")))

    def log(
        self, run_id: int, *, stream: str | None = None, follow: bool = False
    ) -> AbstractContextManager[Iterator[bytes]]:
        """A context manager over the log's chunks (``GET /runs/{id}/logs``)."""
        params = {"stream": stream, "follow": "true" if follow else None}
        return self.stream(run_path(run_id, "logs"), params)

    def pages(self, path: str, params: Mapping[str, Any], *, all_pages: bool) -> dict[str, Any]:
        """One page as the API sent it, or every page following ``next_cursor`` merged in one."""
        query = dict(params)
        first = page = _object(self.request("GET", path, params=query))
        items = _items(page)
        seen: set[str] = set()
        while all_pages and isinstance(cursor := page.get("next_cursor"), str) and cursor:
            if cursor in seen:
                break
            seen.add(cursor)
            query["cursor"] = cursor
            page = _object(self.request("GET", path, params=query))
            items.extend(_items(page))
        return {**first, "items": items, "next_cursor": page.get("next_cursor")}


def _clean(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Drop unset query parameters; httpx repeats list values (``status=A&status=B``)."""
    if params is None:
        return None
    return {k: v for k, v in params.items() if v is not None and v != []}


def _items(page: Mapping[str, Any]) -> list[Any]:
    items = page.get("items")
    if not isinstance(items, list):
        raise CliError("the server answered a list without its 'items'")
    return list(items)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise CliError(f"the server answered {type(body).__name__} where a JSON object was due")
    return body


def _detail_lines(details: Any) -> list[str]:
    """Validation details, one short line each: ``[{loc, message}]`` lists (``msg`` from other
    FastAPI servers) or ``{field: problem}``. A single problem is the message itself: no line."""
    lines: list[str] = []
    if isinstance(details, list):
        if len(details) == 1 and isinstance(details[0], dict) and "loc" in details[0]:
            return []
        for item in details:
            text = item.get("message", item.get("msg")) if isinstance(item, dict) else None
            if text is not None:
                loc = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
                lines.append(f"  {loc}: {text}" if loc and not str(text).startswith(loc)
                             else f"  {text}")
            else:
                lines.append(f"  {item}")
    elif isinstance(details, dict):
        lines.extend(f"  {key}: {value}" for key, value in details.items())
    if len(lines) > _MAX_DETAIL_LINES:
        lines = [*lines[:_MAX_DETAIL_LINES], f"  … and {len(lines) - _MAX_DETAIL_LINES} more"]
    return lines
