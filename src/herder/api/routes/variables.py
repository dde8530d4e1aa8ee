"""``/api/v1/variables`` and ``/api/v1/secrets``: named values for templates, per namespace or
global (namespace ``*``).

Both have the same routes (POST, GET list and one, PUT create-or-replace, DELETE). A variable
answers its value; a secret answers its metadata only, ever: its value goes in once, encrypted,
and comes out only into the runs that name it.
"""


import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from herder.api.auth import Permission, PrincipalDep
from herder.api.deps import EngineDep
from herder.api.routes.jobs import parse_cursor
from herder.engine.engine import Engine
from herder.model import variables as rules
from herder.model.errors import Forbidden, InvalidSpec
from herder.model.variables import Variable
from herder.secret_keys import SecretKeyError
from herder.store import variables as store
from herder.store.variables import Kind


class _ValueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="letters, digits and _, starting with a letter", max_length=200)
    namespace: str = Field("default", description="a namespace, or * for every namespace",
                           max_length=200)
    value: str = Field(description="text, at most 64 KiB (a secret: 6 characters to 8 KiB)")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        try:
            return rules.check_namespace(v)
        except InvalidSpec as exc:
            raise ValueError(exc.message) from None


class VariableIn(_ValueIn):
    """A variable: ``{{ vars.NAME }}`` in templates."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked(rules.check_variable_name, v)

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        return _checked(rules.check_value, v, secret=False)


class SecretIn(_ValueIn):
    """A secret: ``{{ secrets.NAME }}`` in templates; its value is never answered."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _checked(rules.check_variable_name, v, what="secret")

    @field_validator("value")
    @classmethod
    def _value(cls, v: str) -> str:
        return _checked(rules.check_value, v, secret=True)


def _checked(fn: Any, *args: Any, **kwargs: Any) -> str:
    try:
        result: str = fn(*args, **kwargs)
    except InvalidSpec as exc:
        raise ValueError(exc.message.removeprefix("name: ").removeprefix("value: ")) from None
    return result


class VariableOut(BaseModel):
    id: int
    ref: str = Field(description="namespace/name (*/name for a global one)")
    name: str
    namespace: str
    value: str
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: Variable) -> "VariableOut":
        assert found.value is not None
        return cls(id=found.id, ref=found.ref, name=found.name, namespace=found.namespace,
                   value=found.value, created_at=found.created_at, updated_at=found.updated_at)


class SecretOut(BaseModel):
    """A secret's metadata; there is no field for its value."""

    id: int
    ref: str = Field(description="namespace/name (*/name for a global one)")
    name: str
    namespace: str
    key_id: str = Field(description="which key encrypted it (a hash of the key)")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: Variable) -> "SecretOut":
        return cls(id=found.id, ref=found.ref, name=found.name, namespace=found.namespace,
                   key_id=found.key_id or "", created_at=found.created_at,
                   updated_at=found.updated_at)


class VariablePage(BaseModel):
    items: list[VariableOut]
    next_cursor: str | None = None


class SecretPage(BaseModel):
    items: list[SecretOut]
    next_cursor: str | None = None


F = TypeVar("F", bound=Callable[..., Any])


def _body(model: type[_ValueIn]) -> Callable[[F], F]:
    """Declare the route's ``body`` as ``model`` (what FastAPI validates), while the code is
    written once against their common base."""

    def declare(route: F) -> F:
        route.__annotations__ = {**route.__annotations__, "body": model}
        return route

    return declare


def _router(kind: Kind, body_type: type[_ValueIn], out: type[BaseModel],
            page: type[BaseModel], change: Permission) -> APIRouter:
    """The routes of one kind; ``change`` is the permission that creates, replaces, deletes."""
    plural = f"{kind}s"
    router = APIRouter(prefix=f"/api/v1/{plural}", tags=[plural])
    answer: Any = out

    def shown(found: Variable) -> Any:
        return answer.of(found)

    async def stored(engine: Engine, body: _ValueIn) -> tuple[str, str | None]:
        if kind == "variable":
            return body.value, None
        keys = engine.secret_keys
        sealed = await asyncio.to_thread(keys.encrypt, body.namespace, body.name, body.value)
        return sealed, keys.current_id

    @router.post("", status_code=status.HTTP_201_CREATED, response_model=out,
                 summary=f"Create a {kind}")
    @_body(body_type)
    async def create(body: _ValueIn, engine: EngineDep, principal: PrincipalDep) -> Any:
        """409 if its scope already has one by that name (PUT replaces)."""
        principal.check(change, body.namespace,
                        missing=store.missing_message(kind, body.namespace, body.name))
        data, key_id = await stored(engine, body)
        found = await engine.db.write(store.create, kind, body.namespace, body.name, data,
                                      key_id=key_id, now=engine.clock())
        return shown(found)

    @router.get("", response_model=page, summary=f"List {plural}")
    async def search(
        engine: EngineDep,
        principal: PrincipalDep,
        namespace: Annotated[str | None, Query(description="a namespace, or * for the global "
                                               f"{plural}", max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: str | None = None,
    ) -> Any:
        """In id order; ``next_cursor`` pages on."""
        found = await engine.db.read(
            store.search, kind, namespace=namespace, readable=principal.readable(),
            after_id=parse_cursor(cursor), limit=limit + 1,
        )
        more = len(found) > limit
        found = found[:limit]
        return {"items": [shown(f) for f in found],
                "next_cursor": str(found[-1].id) if more else None}

    @router.get("/{ref:path}", response_model=out, summary=f"Get a {kind}")
    async def get(ref: str, engine: EngineDep, principal: PrincipalDep) -> Any:
        """By ``namespace/name``, ``*/name`` (global) or ``name`` (in ``default``)."""
        namespace, name = rules.parse_ref(ref)
        principal.check(Permission.READ, namespace,
                        missing=store.missing_message(kind, namespace, name))
        return shown(await engine.db.read(store.get, kind, namespace, name))

    @router.put("/{ref:path}", response_model=out, responses={201: {"model": out}},
                summary=f"Create or replace a {kind}")
    @_body(body_type)
    async def replace(ref: str, body: _ValueIn, engine: EngineDep, principal: PrincipalDep,
                      response: Response) -> Any:
        """``ref`` must name what the body names; 201 when it was created."""
        if rules.parse_ref(ref) != (body.namespace, body.name):
            raise InvalidSpec(f"the path names {ref[:100]!r} but the body names "
                              f"{body.namespace}/{body.name}")
        principal.check(change, body.namespace,
                        missing=store.missing_message(kind, body.namespace, body.name))
        data, key_id = await stored(engine, body)
        found, created = await engine.db.write(store.put, kind, body.namespace, body.name, data,
                                               key_id=key_id, now=engine.clock())
        response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
        return shown(found)

    @router.delete("/{ref:path}", status_code=status.HTTP_204_NO_CONTENT,
                   summary=f"Delete a {kind}")
    async def delete(ref: str, engine: EngineDep, principal: PrincipalDep) -> Response:
        """Jobs that name it stay; their next runs end PROC_ERROR naming it."""
        namespace, name = rules.parse_ref(ref)
        principal.check(change, namespace, missing=store.missing_message(kind, namespace, name))
        await engine.db.write(store.delete, kind, namespace, name)
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


variables = _router("variable", VariableIn, VariableOut, VariablePage, Permission.EDIT)
secrets = _router("secret", SecretIn, SecretOut, SecretPage, Permission.ADMIN)


class Reencrypted(BaseModel):
    """What ``POST /api/v1/secrets/reencrypt`` did."""

    key_id: str = Field(description="the current key, which every secret is encrypted with now")
    reencrypted: int = Field(description="secrets moved from an older key to the current one")
    unreadable: list[str] = Field(description="secrets no key of this server decrypts (set "
                                  "them again)")


@secrets.post("/reencrypt", response_model=Reencrypted, summary="Re-encrypt every secret")
async def reencrypt(engine: EngineDep, principal: PrincipalDep) -> Reencrypted:
    """After a key rotation: encrypt every secret still under an older key with the current
    key (``HERDER_SECRET_KEY``), so that the old key can be dropped. Needs admin on ``*``."""
    if not principal.everywhere(Permission.ADMIN):  # the route exists: say what it needs
        raise Forbidden("re-encrypting secrets needs an admin token for every namespace ('*')")
    principal.check(Permission.ADMIN, rules.GLOBAL, missing="no such route; see /docs")
    keys = engine.secret_keys
    current = await asyncio.to_thread(lambda: keys.current_id)
    found = await engine.db.read(store.sealed_with_other_keys, current)

    def convert() -> tuple[list[tuple[int, str, str, str]], list[str]]:
        changes, unreadable = [], []
        for secret_id, namespace, name, old in found:
            try:
                value = keys.decrypt(namespace, name, old)
            except SecretKeyError:
                unreadable.append(f"{namespace}/{name}")
                continue
            changes.append((secret_id, old, keys.encrypt(namespace, name, value), current))
        return changes, unreadable

    changes, unreadable = await asyncio.to_thread(convert)
    done = await engine.db.write(store.reseal, changes, engine.clock())
    return Reencrypted(key_id=current, reencrypted=done, unreadable=unreadable)
