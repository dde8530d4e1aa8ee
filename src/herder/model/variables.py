"""Variables and secrets: named values that templates use as ``{{ vars.x }}`` and
``{{ secrets.y }}``.

Each lives in a namespace, or in ``*``, the global scope: a run of a job in namespace ``ops``
sees the values of ``ops`` and, for names ``ops`` does not define, the global ones. A secret is
the same, except that its value is kept encrypted, never answered by the API, and masked in the
logs and outputs of the runs that use it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herder.model.errors import InvalidSpec
from herder.model.jobs import check_name
from herder.model.templates import Refs, Scope

GLOBAL = "*"
NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
MAX_VARIABLE = 64 * 1024
MAX_SECRET = 8 * 1024
# Masking a shorter value would turn ordinary words of a log into ``***`` (and tell anyone
# reading it which short string the secret is): refused.
MIN_SECRET = 6


def check_variable_name(name: object, *, what: str = "variable") -> str:
    """Letters, digits and ``_``, starting with a letter: what ``{{ vars.NAME }}`` can name."""
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        shown = str(name)[:70]
        raise InvalidSpec(
            f"name: {shown!r} is not a valid {what} name; use letters, digits and '_', "
            "starting with a letter, at most 64 characters"
        )
    return name


def check_namespace(namespace: str) -> str:
    """A namespace name, or ``*`` for the global scope."""
    return namespace if namespace == GLOBAL else check_name(namespace, what="namespace")


def check_value(value: object, *, secret: bool) -> str:
    """A value is text without NUL bytes; a secret between ``MIN_SECRET`` and ``MAX_SECRET``
    characters. Messages never quote the value."""
    if not isinstance(value, str):
        raise InvalidSpec("value: must be a string")
    if "\x00" in value:
        raise InvalidSpec("value: NUL bytes are not allowed")
    limit = MAX_SECRET if secret else MAX_VARIABLE
    if len(value) > limit:
        raise InvalidSpec(f"value: longer than {limit // 1024} KiB")
    if secret and len(value.strip()) < MIN_SECRET:
        raise InvalidSpec(
            f"value: a secret must have at least {MIN_SECRET} characters besides spaces, so "
            "that masking it in logs does not hide ordinary words; this one is too short"
        )
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Variable:
    """A stored variable, or a secret's metadata (``value`` is None for a secret)."""

    id: int
    namespace: str
    name: str
    value: str | None
    created_at: datetime
    updated_at: datetime
    key_id: str | None = None  # for a secret: which key encrypted it

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_ref(ref: str) -> tuple[str, str]:
    """``namespace/name``, ``*/name`` (global) or ``name`` (in ``default``)."""
    namespace, sep, name = ref.rpartition("/")
    return (namespace if sep else "default"), name


@dataclass(frozen=True, slots=True, kw_only=True)
class Values:
    """The variables and secrets one run uses, resolved for its namespace."""

    namespace: str
    vars: Mapping[str, str]
    secrets: Mapping[str, str]

    def context(self) -> dict[str, Any]:
        where = f"in namespace {self.namespace!r} or globally"
        return {"vars": Scope("variable", self.vars, where=where),
                "secrets": Scope("secret", self.secrets, where=where)}


NO_VALUES = Values(namespace="", vars={}, secrets={})


def undefined(
    refs: Refs, defined_vars: Iterable[str], defined_secrets: Iterable[str], *, namespace: str,
    then: str,
) -> InvalidSpec | None:
    """The error naming what ``refs`` names that a run in ``namespace`` cannot see (``then``
    says what to do once it is created), or None."""
    parts = []
    for kind, names in (("variable", refs.vars - set(defined_vars)),
                        ("secret", refs.secrets - set(defined_secrets))):
        if names:
            plural = "s" if len(names) > 1 else ""
            parts.append(f"{kind}{plural} " + ", ".join(repr(n) for n in sorted(names)))
    if not parts:
        return None
    return InvalidSpec(
        f"{' and '.join(parts)} not defined in namespace {namespace!r} or globally: create "
        f"them (herder var set / herder secret set), then {then}",
        details={"namespace": namespace},
    )
