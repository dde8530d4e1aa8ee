"""``herder token …``, ``herder namespace …``, ``herder whoami``, ``herder audit``.

All but ``token bootstrap`` talk to the API. ``token bootstrap`` makes the first admin token
straight in the store, beside the server, with the server's own settings (``--data-dir``,
``HERDER_DATABASE_URL``): it is how a server gets its first credential without a default
password.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from herder.cli import render
from herder.cli.client import API, CliError
from herder.cli.common import OutputOpt, ServerOpt, connect, output_of
from herder.cli.render import Output
from herder.cli.runs import moment_arg

tokens = typer.Typer(name="token", help="Create, list and revoke API tokens.",
                     no_args_is_help=True,
                     context_settings={"help_option_names": ["-h", "--help"]})
namespaces = typer.Typer(name="namespace", help="Create, list, show and delete namespaces.",
                         no_args_is_help=True,
                         context_settings={"help_option_names": ["-h", "--help"]})
ROLES = ("viewer", "operator", "editor", "admin")
_ONCE = "shown once: keep it now (e.g. as HERDER_TOKEN); the server keeps only its hash"


def register(app: typer.Typer) -> None:
    app.add_typer(tokens)
    app.add_typer(namespaces)
    app.command("whoami")(whoami)
    app.command("audit")(audit)


def _table(rows: Iterable[Mapping[str, Any]], columns: list[tuple[str, str]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for header, _ in columns:
        table.add_column(header, overflow="ellipsis")
    for row in rows:
        table.add_row(*(render.cell(row.get(key)) for _, key in columns))
    return table


_TOKEN_COLUMNS = [("ID", "id"), ("NAME", "name"), ("NAMESPACE", "namespace"), ("ROLE", "role"),
                  ("EXPIRES", "expires_at"), ("REVOKED", "revoked_at"),
                  ("LAST USED", "last_used_at"), ("BY", "created_by")]


def _show_secret(token: Mapping[str, Any], fmt: Output) -> None:
    if fmt is not Output.TABLE:
        render.emit(token, fmt)
        return
    expires = token.get("expires_at") or "never"
    render.hint(f"token {token['id']} ({token['name']}): {token['role']} in "
                f"{token['namespace']}, expires {expires}")
    render.out().print(token["token"], markup=False, highlight=False, soft_wrap=True)
    render.hint(_ONCE)


@tokens.command("create")
def token_create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(help="who uses it (default: ROLE-NAMESPACE)")]
    = None,
    namespace: Annotated[str, typer.Option("--namespace", "-n", help="'*' for every one")]
    = "default",
    role: Annotated[str, typer.Option("--role", "-r", help=" | ".join(ROLES))] = "viewer",
    expires: Annotated[str | None, typer.Option("--expires", help="e.g. 30d, 12h")] = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Make a token (needs an admin token); its secret is printed this once."""
    if role not in ROLES:
        raise typer.BadParameter(f"{role!r} is not one of {', '.join(ROLES)}",
                                 param_hint="--role")
    body = {"name": name or f"{role}-{'all' if namespace == '*' else namespace}",
            "namespace": namespace, "role": role, "expires_in": expires}
    with connect(ctx, server) as api:
        token = api.post(f"{API}/tokens", body)
    _show_secret(token, output_of(ctx, output))


@tokens.command("list")
def token_list(
    ctx: typer.Context,
    all_pages: Annotated[bool, typer.Option("--all", "-a", help="every page")] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List tokens (never their secrets)."""
    _list(ctx, server, output, "tokens", {}, all_pages, _TOKEN_COLUMNS)


@tokens.command("revoke")
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(metavar="ID", min=1)],
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Revoke a token: it answers 401 from now on."""
    with connect(ctx, server) as api:
        token = api.request("DELETE", f"{API}/tokens/{token_id}")
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(token, fmt)
    else:
        render.hint(f"token {token['id']} ({token['name']}) revoked at {token['revoked_at']}")


@tokens.command("bootstrap")
def token_bootstrap(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="the token's name")] = "admin",
    data_dir: Annotated[Path | None, typer.Option(
        "--data-dir", help="the server's data folder (as for `herder server`)",
        show_default=False)] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="e.g. 30d")] = None,
    output: OutputOpt = None,
) -> None:
    """Make the first admin token (every namespace) straight in the server's store; refused
    once a usable admin token exists. Run it where the server runs, with its settings."""
    from herder.bootstrap import bootstrap

    settings = load_settings({"data_dir": data_dir})
    try:
        token = bootstrap(settings, name=name, expires=expires)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    _show_secret(token, output_of(ctx, output))


MaxAgeOpt = Annotated[str | None, typer.Option(
    "--max-age", help="keep ended runs this long (e.g. 90d), for jobs that set no retention")]
MaxRunsOpt = Annotated[int | None, typer.Option(
    "--max-runs", help="keep this many ended runs per job, for jobs that set no retention")]


def _retention(max_age: str | None, max_runs: int | None) -> dict[str, Any] | None:
    given = {"max_age": max_age, "max_runs": max_runs}
    return {k: v for k, v in given.items() if v is not None} or None


def _kept(retention: Mapping[str, Any] | None) -> str:
    """A namespace's retention as the CLI says it: ``max_age 90d, max_runs 10``."""
    return ", ".join(f"{k} {v}" for k, v in (retention or {}).items()) or "the server default"


@namespaces.command("create")
def namespace_create(
    ctx: typer.Context,
    name: str,
    max_age: MaxAgeOpt = None,
    max_runs: MaxRunsOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create a namespace (needs an admin token for every namespace)."""
    body: dict[str, Any] = {"name": name}
    if (retention := _retention(max_age, max_runs)) is not None:
        body["retention"] = retention
    with connect(ctx, server) as api:
        found = api.post(f"{API}/namespaces", body)
    _done(found, output_of(ctx, output), f"namespace {name} created")


@namespaces.command("retention")
def namespace_retention(
    ctx: typer.Context,
    name: str,
    max_age: MaxAgeOpt = None,
    max_runs: MaxRunsOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Set how long the ended runs of the namespace's jobs are kept, where a job sets no
    retention of its own; with neither option, the server's default applies again."""
    retention = _retention(max_age, max_runs)
    with connect(ctx, server) as api:
        found = api.send("PATCH", f"{API}/namespaces/{name}", json={"retention": retention})
    _done(found.json(), output_of(ctx, output), f"namespace {name}: retention {_kept(retention)}")


@namespaces.command("list")
def namespace_list(
    ctx: typer.Context,
    all_pages: Annotated[bool, typer.Option("--all", "-a", help="every page")] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List the namespaces this token may read."""
    _list(ctx, server, output, "namespaces", {}, all_pages,
          [("NAME", "name"), ("CREATED", "created_at")])


@namespaces.command("show")
def namespace_show(
    ctx: typer.Context, name: str, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """One namespace and what it holds."""
    with connect(ctx, server) as api:
        found = api.get(f"{API}/namespaces/{name}")
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    holds = ", ".join(f"{n} {kind}" for kind, n in (found.get("holds") or {}).items())
    render.out().print(f"{found['name']}: created {found['created_at']}; holds "
                       f"{holds or 'nothing'}; retention {_kept(found.get('retention'))}",
                       markup=False, highlight=False)


@namespaces.command("delete")
def namespace_delete(
    ctx: typer.Context,
    name: str,
    force: Annotated[bool, typer.Option("--force", help="delete what it holds with it (jobs, "
                                        "tokens, runs and their logs)")] = False,
    server: ServerOpt = None,
) -> None:
    """Delete a namespace; refused while it holds objects unless --force."""
    with connect(ctx, server) as api:
        api.send("DELETE", f"{API}/namespaces/{name}", params={"force": "true" if force
                                                                else None})
    render.hint(f"namespace {name} deleted")


def whoami(ctx: typer.Context, server: ServerOpt = None, output: OutputOpt = None) -> None:
    """Who the server takes this CLI for ($HERDER_TOKEN), and what it may do."""
    with connect(ctx, server) as api:
        me = api.get(f"{API}/whoami")
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(me, fmt)
    elif me.get("authentication") == "off":
        render.out().print("anonymous: this server runs open (no tokens), anyone may do "
                           "anything")
    else:
        ident = f"token {me['token_id']}" if me.get("token_id") else "HERDER_ADMIN_TOKEN"
        render.out().print(f"{me['name']} ({ident}): {me['role']} in {me['namespace']}",
                           markup=False, highlight=False)


def audit(
    ctx: typer.Context,
    actor: Annotated[str | None, typer.Option("--actor", help="a token's name")] = None,
    action: Annotated[str | None, typer.Option("--action", help="e.g. job.create, job.*")]
    = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    since: Annotated[str | None, typer.Option("--since", metavar="WHEN",
                                              help="'1d', '2h' ago, or a time")] = None,
    until: Annotated[str | None, typer.Option("--until", metavar="WHEN")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1)] = None,
    all_pages: Annotated[bool, typer.Option("--all", "-a", help="every page")] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Search the audit trail, newest first (needs an admin token)."""
    params = {"actor": actor, "action": action, "namespace": namespace,
              "since": moment_arg(since, "--since"), "until": moment_arg(until, "--until"),
              "limit": limit}
    columns = [("AT", "at"), ("ACTOR", "actor"), ("ACTION", "action"),
               ("NAMESPACE", "namespace"), ("OBJECT", "object"), ("STATUS", "status"),
               ("CLIENT", "client")]
    _list(ctx, server, output, "audit", params, all_pages, columns, noun="audit entries")


def _list(
    ctx: typer.Context, server: str | None, output: Output | None, what: str,
    params: dict[str, Any], all_pages: bool, columns: list[tuple[str, str]], *,
    noun: str | None = None,
) -> None:
    """One of the API's lists (``/api/v1/<what>``) as a table, or as JSON or YAML."""
    with connect(ctx, server) as api:
        found = api.pages(f"{API}/{what}", params, all_pages=all_pages)
    render.page(found, output_of(ctx, output), lambda rows: _table(rows, columns), noun or what)


def _done(found: Any, fmt: Output, message: str) -> None:
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
    else:
        render.hint(message)


def load_settings(given: dict[str, Any]) -> Any:
    """The server's ``Settings``: the options given (None: not given) over HERDER_* and .env;
    bad ones are a usage error naming the variable."""
    from pydantic import ValidationError

    from herder.settings import Settings

    try:
        return Settings(**{k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        prefix = Settings.model_config.get("env_prefix", "")
        problems = "; ".join(
            f"{prefix}{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}"
            for e in exc.errors()
        )
        raise CliError(f"bad server settings: {problems}", exit_code=2) from None
