"""The ``herder`` command: the Typer app, its global options, ``server`` and ``version``.

Every command but ``server`` talks to a herder server over the REST API (``client.py``). Slow
imports (the server, the settings) happen inside the commands that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperCommand, TyperGroup

from herder import __version__
from herder.cli import access, apply, bundles, jobs, locks, render, runs, variables, workflows
from herder.cli.access import load_settings
from herder.cli.client import DEFAULT_URL, CliError
from herder.cli.common import EXIT_CODES, State
from herder.cli.render import Output


class HerderGroup(TyperGroup):
    """Shows a ``CliError`` as one message on stderr and exits with its code, no traceback."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except CliError as exc:
            render.error(exc.message)
            raise typer.Exit(exc.exit_code) from None


class ServerCommand(TyperCommand):
    """``herder server``: its epilog (the HERDER_* variables) is built only when help is shown."""

    @property
    def epilog(self) -> str:
        return settings_epilog()

    @epilog.setter
    def epilog(self, value: str | None) -> None:
        pass


app = typer.Typer(
    name="herder",
    cls=HerderGroup,
    help="herder: schedule, run, chain and watch jobs. This CLI talks to a herder server's API.",
    epilog="\n" + EXIT_CODES,  # a first line of its own keeps the table's indentation
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(jobs.app, name="job")
app.add_typer(workflows.app, name="workflow")
app.add_typer(variables.var_app, name="var")
app.add_typer(variables.secret_app, name="secret")
app.add_typer(bundles.app, name="bundle")
app.add_typer(locks.app, name="lock")
runs.register(app)
apply.register(app)
access.register(app)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"herder {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    server: Annotated[
        str,
        typer.Option(
            "--server",
            envvar="HERDER_URL",
            metavar="URL",
            help="the herder server to talk to (a token comes from $HERDER_TOKEN)",
        ),
    ] = DEFAULT_URL,
    output: Annotated[
        Output,
        typer.Option(
            "--output",
            "-o",
            case_sensitive=False,
            help="table for people; json or yaml print the API's documents for scripts",
        ),
    ] = Output.TABLE,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    ctx.obj = State(server=server, output=output)


@app.command("version")
def version() -> None:
    """Print the version of this CLI."""
    typer.echo(f"herder {__version__}")


@app.command("server", cls=ServerCommand)
def server(
    host: Annotated[
        str | None, typer.Option("--host", help="address to listen on", show_default=False)
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", min=0, max=65535, help="port to listen on", show_default=False),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir", help="folder for the database, logs and work folders", show_default=False
        ),
    ] = None,
    allow_open: Annotated[
        bool,
        typer.Option("--allow-open", help="run open (no tokens) on a non-loopback address too"),
    ] = False,
) -> None:
    """Run the herder server (API, scheduler, dispatcher) in this process.

    Options override the HERDER_* environment variables and a .env file.
    """
    given: dict[str, Any] = {"host": host, "port": port, "data_dir": data_dir,
                             "allow_open": allow_open or None}
    settings = load_settings(given)
    try:
        from herder.server import serve
    except ModuleNotFoundError as exc:
        if exc.name != "herder.server":
            raise
        raise CliError("this installation has no server (herder.server is missing)") from None
    serve(settings)


def settings_epilog() -> str:
    """The HERDER_* variables, from ``Settings.model_fields``: name, description, default."""
    from herder.settings import Settings

    prefix = str(Settings.model_config.get("env_prefix", "HERDER_"))
    rows = []
    for name, field in Settings.model_fields.items():
        default = field.get_default(call_default_factory=True)
        shown = "unset" if default is None else str(default)
        rows.append((f"{prefix}{name.upper()}", field.description or "", shown))
    lines = [
        "",  # a first line of its own keeps the indentation below
        "Environment variables (an option given above wins over its variable):",
    ]
    for env, text, shown in rows:
        lines.append(f"  {env}  [dim](default: {escape(shown)})[/dim]")
        lines.append(f"      {escape(text)}")
    return "\n".join(lines)


def main() -> None:
    """The console script and ``python -m herder``."""
    app(prog_name="herder")
