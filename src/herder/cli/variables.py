"""``herder var …`` and ``herder secret …``: the values templates name as ``{{ vars.x }}`` and
``{{ secrets.y }}``.

A secret's value is read from a prompt that does not echo, or from standard input when it is
not a terminal (``printf %s "$PW" | herder secret set db_password``); ``--value`` works but
warns, since a command line is seen by other users (``ps``) and kept in shell history.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.table import Table

from herder.cli import render
from herder.cli.client import API, CliError
from herder.cli.common import AllPagesOpt, OutputOpt, ServerOpt, connect, output_of
from herder.cli.render import Output, cell, relative
from herder.model.variables import GLOBAL

_SETTINGS = {"no_args_is_help": True, "context_settings": {"help_option_names": ["-h", "--help"]}}
var_app = typer.Typer(
    name="var", help="Set, read, list and delete variables ({{ vars.NAME }} in templates).",
    **_SETTINGS,  # type: ignore[arg-type]
)
secret_app = typer.Typer(
    name="secret",
    help="Set, list and delete secrets ({{ secrets.NAME }} in templates); values are never shown.",
    **_SETTINGS,  # type: ignore[arg-type]
)

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="letters, digits and _")]
NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", help="the namespace it belongs to")
]
GlobalOpt = Annotated[
    bool, typer.Option("--global", "-g", help="the global one (namespace *), seen by every "
                       "namespace that has none by that name")
]


def _scope(namespace: str, is_global: bool) -> str:
    return GLOBAL if is_global else namespace


def _path(kind: str, namespace: str, name: str) -> str:
    return f"{API}/{kind}s/{namespace}/{name}"


def _put(ctx: typer.Context, server: str | None, kind: str, namespace: str, name: str,
         value: str) -> tuple[dict[str, Any], bool]:
    body = {"name": name, "namespace": namespace, "value": value}
    with connect(ctx, server) as api:
        response = api.send("PUT", _path(kind, namespace, name), json=body)
        found: dict[str, Any] = response.json()
        return found, response.status_code == 201


def _list_and_delete(app: typer.Typer, kind: str, table: Callable[[list[Any]], Table],
                     shows: str) -> None:
    """``list`` and ``delete``, the same for both kinds."""

    @app.command("list", help=f"List {kind}s ({shows}).")
    def listing(
        ctx: typer.Context,
        namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="only this one "
                                                      "(* for the global ones)")] = None,
        everything: AllPagesOpt = False,
        server: ServerOpt = None,
        output: OutputOpt = None,
    ) -> None:
        with connect(ctx, server) as api:
            data = api.pages(f"{API}/{kind}s", {"namespace": namespace}, all_pages=everything)
        render.page(data, output_of(ctx, output), table, f"{kind}s")

    @app.command("delete",
                 help=f"Delete a {kind} (jobs that name it fail their next runs, naming it).")
    def delete(
        ctx: typer.Context,
        name: NameArg,
        namespace: NamespaceOpt = "default",
        is_global: GlobalOpt = False,
        server: ServerOpt = None,
    ) -> None:
        scope = _scope(namespace, is_global)
        with connect(ctx, server) as api:
            api.request("DELETE", _path(kind, scope, name))
        render.out().print(f"deleted {kind} {scope}/{name}", markup=False)


def _said(kind: str, found: dict[str, Any], created: bool, fmt: Output) -> None:
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    render.out().print(f"{'created' if created else 'replaced'} {kind} {found.get('ref')}",
                       markup=False)


# -- variables --------------------------------------------------------------------------------


@var_app.command("set")
def var_set(
    ctx: typer.Context,
    name: NameArg,
    value: Annotated[str, typer.Argument(metavar="VALUE", help="its value")],
    namespace: NamespaceOpt = "default",
    is_global: GlobalOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create or replace a variable."""
    found, created = _put(ctx, server, "variable", _scope(namespace, is_global), name, value)
    _said("variable", found, created, output_of(ctx, output))


@var_app.command("get")
def var_get(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = "default",
    is_global: GlobalOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Print a variable's value (-o json: the whole document)."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = api.get(_path("variable", _scope(namespace, is_global), name))
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    sys.stdout.write(str(found.get("value", "")) + "\n")


def _table(kind: str, shown: str) -> Callable[[list[Any]], Table]:
    """A table of one kind: its ref, one more field (``shown``), when it changed."""

    def table(items: list[Any]) -> Table:
        found = Table(box=None, header_style="bold", pad_edge=False)
        found.add_column(kind.upper(), no_wrap=True)
        found.add_column("KEY" if shown == "key_id" else shown.upper(), overflow="ellipsis")
        found.add_column("UPDATED", no_wrap=True)
        for item in items:
            found.add_row(cell(item.get("ref")), cell(item.get(shown)),
                          relative(item.get("updated_at")))
        return found

    return table


_list_and_delete(var_app, "variable", _table("variable", "value"), "with their values")


# -- secrets ----------------------------------------------------------------------------------


def read_secret(value: str | None) -> str:
    """The value: ``--value`` (with a warning), a prompt without echo, or standard input."""
    if value is not None:
        render.hint("warning: a value given on the command line is visible to other users "
                    "(ps) and kept in shell history; prefer the prompt or standard input")
        return value
    if sys.stdin.isatty():
        first = getpass.getpass("value (not shown): ")
        if getpass.getpass("again: ") != first:
            raise CliError("the two values differ; nothing was set", exit_code=2)
        return first
    text = sys.stdin.read()
    # One trailing newline is the shell's (echo, a file's last line), not the secret's.
    return text[:-1] if text.endswith("\n") else text


@secret_app.command("set")
def secret_set(
    ctx: typer.Context,
    name: NameArg,
    namespace: NamespaceOpt = "default",
    is_global: GlobalOpt = False,
    value: Annotated[str | None, typer.Option("--value", help="the value (visible in ps and "
                                              "shell history: avoid)")] = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create or replace a secret; the value comes from a prompt or standard input."""
    secret = read_secret(value)
    if not secret:
        raise CliError("empty value; nothing was set", exit_code=2)
    found, created = _put(ctx, server, "secret", _scope(namespace, is_global), name, secret)
    _said("secret", found, created, output_of(ctx, output))


@secret_app.command("reencrypt")
def secret_reencrypt(ctx: typer.Context, server: ServerOpt = None,
                     output: OutputOpt = None) -> None:
    """After a key rotation: move every secret to the server's current key."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        done = api.post(f"{API}/secrets/reencrypt")
    if fmt is not Output.TABLE:
        render.emit(done, fmt)
        return
    render.out().print(f"re-encrypted {done.get('reencrypted')} secret(s) with key "
                       f"{done.get('key_id')}", markup=False)
    for ref in done.get("unreadable") or ():
        render.error(f"{ref}: no key of the server decrypts it; set it again")


@secret_app.command("new-key")
def new_key() -> None:
    """Print a fresh key for HERDER_SECRET_KEY (made here; no server is asked)."""
    from herder.secret_keys import new_key as make

    sys.stdout.write(make() + "\n")


_list_and_delete(secret_app, "secret", _table("secret", "key_id"),
                 "names and dates; never values")
