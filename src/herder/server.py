"""``herder server``: the API, the engine and (later) the UI in one asyncio process."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys
from datetime import UTC, datetime

import sqlalchemy as sa
import uvicorn
from sqlalchemy import exc as sa_exc

from herder.api.app import create_app
from herder.server_identity import server_id
from herder.settings import Settings
from herder.store import servers as server_store
from herder.store import tokens as token_store
from herder.store.database import Database
from herder.store.migrate import upgrade


def serve(settings: Settings) -> None:
    """Serve until SIGINT or SIGTERM. Runs that are running keep running across a stop."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    problem = refusal(settings)
    if problem is not None:
        print(f"error: herder server cannot start: {problem}", file=sys.stderr)
        raise SystemExit(1)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        loop="uvloop",
        http="httptools",
        timeout_graceful_shutdown=5,
    )


def refusal(settings: Settings) -> str | None:
    """Why this server may not start (another one is active where only one may be), said
    plainly before anything is served; the engine checks again when it registers."""
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    url = settings.store_url
    try:
        db = Database(url, readers=1)
    except (sa_exc.ArgumentError, ModuleNotFoundError):
        return (
            f"HERDER_DATABASE_URL {_shown(url)!r} names no database herder can use; "
            "use postgresql://USER@HOST[:PORT]/DB or sqlite:///PATH"
        )
    try:
        upgrade(db.engine)
        problem = db.read_sync(
            server_store.refusal, server_id=server_id(data_dir), host=socket.gethostname(),
            now=datetime.now(UTC), only_one=db.dialect == "sqlite",
        )
        if problem is None and not (is_loopback(settings.host) or settings.allow_open
                                    or settings.admin_token is not None):
            if not db.read_sync(token_store.any_exist):
                problem = (
                    f"--host {settings.host} is not a loopback address and no API tokens "
                    "exist, so anyone who reaches it could run commands; make the first admin "
                    "token with `herder token bootstrap` (or set HERDER_ADMIN_TOKEN), or pass "
                    "--allow-open (HERDER_ALLOW_OPEN=true) to run open on purpose"
                )
        return problem
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        # The driver's own first line says why (refused, no such database, bad password).
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        return f"the database at {_shown(url)} does not answer: {reason}"
    finally:
        db.close()


def _shown(url: str) -> str:
    """The URL as it may be printed: without its password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except sa_exc.ArgumentError:
        return url[:200]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (a name other than ``localhost``
    could resolve anywhere, so it is not)."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
