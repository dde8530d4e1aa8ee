"""``herder token bootstrap``: the first admin token, made straight in the server's store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from herder.api.schemas_access import TokenOut
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.jobs import check_name
from herder.model.tokens import ALL_NAMESPACES, Role, Token, digest, format_token, new_secret
from herder.settings import Settings
from herder.store import tokens as token_store
from herder.store.database import Database
from herder.store.migrate import upgrade


def bootstrap(settings: Settings, *, name: str, expires: str | None = None) -> dict[str, Any]:
    """Make an admin token for every namespace; ``ValueError`` saying why not (a usable admin
    token exists, a bad name). Answers the token's document with its secret, as
    ``POST /api/v1/tokens`` does."""
    try:
        check_name(name, what="name")
        lifetime = None if expires is None else parse_duration(expires, field="--expires")
    except InvalidSpec as exc:
        raise ValueError(exc.message) from None
    settings.data_dir.resolve().mkdir(parents=True, exist_ok=True, mode=0o700)
    db = Database(settings.store_url, readers=1)
    try:
        upgrade(db.engine)
        secret = new_secret()

        def create(conn: Any) -> Token:
            now = datetime.now(UTC)
            if token_store.admin_exists(conn, now):
                raise ValueError(
                    "an admin token for every namespace exists already; use it to make more "
                    "(`herder token create --namespace '*' --role admin`), or revoke it first"
                )
            return token_store.create(
                conn, name=name, namespace=ALL_NAMESPACES, role=Role.ADMIN,
                secret_hash=digest(secret), now=now, created_by="herder token bootstrap",
                expires_at=None if lifetime is None else now + timedelta(seconds=lifetime),
            )

        token = db.write_sync(create)
    finally:
        db.close()
    return TokenOut.of(token, format_token(token.id, secret)).model_dump(mode="json")
