"""One place maps herder's error tree (and the framework's) to HTTP statuses and the documented
body ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException
from starlette.routing import Match

from herder.model.errors import (
    BackendError,
    Conflict,
    Forbidden,
    HerderError,
    InvalidSpec,
    NotFound,
    StaleOwner,
    Unauthorized,
)

log = logging.getLogger(__name__)

STATUS: list[tuple[type[HerderError], int]] = [
    (InvalidSpec, 422),
    (NotFound, 404),
    (Unauthorized, 401),
    (Forbidden, 403),
    (Conflict, 409),
    (StaleOwner, 409),
    (BackendError, 502),
]
_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported"}


def invalid(exc: ValidationError) -> InvalidSpec:
    """A body checked inside a route (a PATCH merged with what is stored) refused as the
    framework's own 422 would be: the first problem named, every problem in ``details``."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return InvalidSpec(
        f"{where}: {str(first['msg']).removeprefix('Value error, ')}",
        details=[{"loc": list(e["loc"]), "message": e["msg"]} for e in exc.errors()],
    )


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def _response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status)


async def _herder_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HerderError)
    status = next((s for cls, s in STATUS if isinstance(exc, cls)), 500)
    return _response(status, exc.code, exc.message, exc.details)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "loc": [str(part) for part in err.get("loc", ())],
            "message": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        for err in exc.errors()
    ]
    if any(p["type"] == "json_invalid" for p in problems):
        return _response(400, "malformed_json", "the request body is not valid JSON", problems)
    first = problems[0] if problems else {"loc": [], "message": "invalid request"}
    where = ".".join(p for p in first["loc"] if p not in ("body",)) or "request"
    message = str(first["message"])
    if message.startswith((f"{where}:", f"{where}.")):  # the model named the field already
        return _response(422, "invalid", message, problems)
    return _response(422, "invalid", f"{where}: {message}", problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and message == "Not Found":
        message = "no such route; see /docs for the API"
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed here; use {' or '.join(allowed)}"
    response = _response(exc.status_code, code, message)
    response.headers.update(headers)
    return response


_METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes at this path (the router names only the first route's).
    Asked of each route through ``matches``, which included routers answer too."""
    routes = request.app.router.routes
    allowed = {
        method for method in _METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL
               for route in routes)
    }
    if "GET" in allowed:
        allowed.add("HEAD")
    return sorted(allowed)


async def _unstorable(_request: Request, exc: Exception) -> JSONResponse:
    # The store refused a value the checks let through: on PostgreSQL, a NUL character in
    # text. It is the client's input, so a 422, and nothing was written (the write failed).
    return _response(
        422, "invalid",
        "a value in the request cannot be stored (text may not contain NUL characters)",
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return _response(500, "internal", "internal error; the server log has the details")


def install(app: FastAPI) -> None:
    app.add_exception_handler(HerderError, _herder_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(sa_exc.DataError, _unstorable)
    app.add_exception_handler(Exception, _unexpected)
