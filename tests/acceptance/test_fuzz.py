"""A schema-driven fuzz of the whole API (schemathesis) against a real server: no operation
answers 5xx, and every answer fits the schema ``/openapi.json`` declares for it.

How it is bounded and kept reproducible:

- Operations are parametrized at collection time from the app's own OpenAPI document, because
  pytest needs them then; ``test_served_schema_is_the_one_fuzzed`` loads the running server's
  ``/openapi.json`` with ``schemathesis.openapi.from_url`` and checks that it is that document.
  (``schemathesis.pytest.from_fixture``, the lazy loader, fails on pytest 9.2, which dropped the
  ``Node._nodeid`` it rewrites.)
- Hypothesis is derandomized, with ``MAX_EXAMPLES`` per operation besides schemathesis'
  examples and coverage cases; every request has a ``REQUEST_TIMEOUT``.
- The server is a throwaway one whose runs time out after 5 s unless their job says otherwise,
  and log ``follow=true`` is sent as ``follow=false``: a followed log streams until its run
  ends, which no request timeout bounds.
- Random job refs and run ids rarely name anything, so the server holds one job and one ended
  run, and every job-ref operation but DELETE is sent a second time at that job (by id, which a
  PATCH or PUT that renames it does not change). Run id 1 is among the coverage cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from herder.api.app import create_app
from tests.acceptance.conftest import short_dir
from tests.servers import Server

pytestmark = [pytest.mark.acceptance, pytest.mark.slow]

MAX_EXAMPLES = 50
REQUEST_TIMEOUT = 15.0
CHECKS = [not_a_server_error, response_schema_conformance]
TRUE = {"true", "1", "yes", "on", "t", "y"}  # what the API reads as a true bool

OPENAPI = create_app().openapi()
schema = schemathesis.openapi.from_dict(OPENAPI)


class Target:
    """The fuzzed server and the job its second requests aim at."""

    def __init__(self, server: Server, job_ref: str) -> None:
        self.server = server
        self.job_ref = job_ref


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = Server(short_dir() / "data", env={"HERDER_DEFAULT_TIMEOUT": "5s"}).start()
    try:
        job = server.create_job(name="fuzz", command=["echo", "{{ params.word }}"],
                                params={"word": "hello"})
        server.wait_end(server.run("fuzz")["id"])
        yield Target(server, str(job["id"]))
    finally:
        server.close()


def _call(case: Any, url: str) -> None:
    case.call_and_validate(base_url=url, timeout=REQUEST_TIMEOUT, checks=CHECKS)


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
def test_no_server_errors(case: Any, target: Target) -> None:
    follow = (case.query or {}).get("follow")
    values = follow if isinstance(follow, list) else [follow]
    if any(str(value).lower() in TRUE for value in values):
        case.query["follow"] = "false"
    _call(case, target.server.url)
    if "ref" in (case.path_parameters or {}) and case.method.upper() != "DELETE":
        case.path_parameters["ref"] = target.job_ref
        _call(case, target.server.url)


def test_served_schema_is_the_one_fuzzed(target: Target) -> None:
    served = schemathesis.openapi.from_url(f"{target.server.url}/openapi.json",
                                           timeout=REQUEST_TIMEOUT)
    assert served.raw_schema == OPENAPI


# Inputs that answered 500 before their fixes, beyond what the fuzz above happens to send.
REGRESSIONS = [
    ("GET", "/api/v1/jobs/%C2%B9", {}, 404),  # '¹'.isdigit(), but int('¹') fails
    ("PUT", "/api/v1/jobs/%C2%B9", {"json": {"name": "x", "command": ["true"]}}, 422),
    ("POST", "/api/v1/jobs/99999999999999999999/runs", {}, 404),  # past the largest id
    ("DELETE", "/api/v1/jobs/9223372036854775808", {}, 404),
    ("GET", "/api/v1/jobs", {"params": {"cursor": "9999999999999999999"}}, 422),
    ("GET", "/api/v1/runs", {"params": {"cursor": "\u00b9"}}, 422),
    ("GET", "/api/v1/runs", {"params": {"job": "99999999999999999999"}}, 200),
    ("GET", "/api/v1/runs", {"params": {"since": "0001-01-01T00:00:00+05:00"}}, 422),
    ("GET", "/api/v1/runs", {"params": {"until": "9999-12-31T23:59:59-05:00"}}, 422),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), REGRESSIONS,
                         ids=[f"{m} {p} {k}" for m, p, k, _ in REGRESSIONS])
def test_inputs_that_once_failed(target: Target, method: str, path: str,
                                 kwargs: dict[str, Any], status: int) -> None:
    with httpx.Client(base_url=target.server.url, timeout=REQUEST_TIMEOUT) as client:
        response = client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
