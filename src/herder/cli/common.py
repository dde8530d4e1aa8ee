"""What every command shares: the global options, ``k=v`` parsing, the exit-code rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

import typer

from herder.cli.client import DEFAULT_URL, Client
from herder.cli.render import Output
from herder.model.runs import TERMINAL

EXIT_CODES = """\
Exit codes:
  0    success; for `run --wait/--follow`: the run succeeded
  1    the API refused, the server is unreachable, or the run failed
  2    a bad command line (an unknown option, a --param without '='), or bad
       manifests (then `apply` applies nothing)
  N    `run --wait/--follow`, `logs -f`: the run's own exit code (APP_ERROR)
  124  the run timed out (like coreutils `timeout`)
  125  the run could not be started (PROC_ERROR)
  130  the run was aborted (cancelled), or you pressed Ctrl-C
`diff` exits like diff(1): 0 nothing would change, 1 something would, 2 trouble
"""

# Exit codes of runs that have no exit code of their own.
STATUS_EXIT = {"SUCCESS": 0, "TIMEOUT": 124, "PROC_ERROR": 125, "ABORTED": 130}
_TERMINAL_NAMES = frozenset(s.value for s in TERMINAL)


@dataclass(slots=True)
class State:
    """The global options, kept on the root context for the subcommands."""

    server: str = DEFAULT_URL
    output: Output = Output.TABLE


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        metavar="URL",
        show_default=False,
        help="herder server URL (default: the global --server, $HERDER_URL, " + DEFAULT_URL + ")",
    ),
]
OutputOpt = Annotated[
    Output | None,
    typer.Option(
        "--output",
        "-o",
        case_sensitive=False,
        show_default=False,
        help="table for people; json or yaml print the API's document for scripts",
    ),
]
AllPagesOpt = Annotated[
    bool, typer.Option("--all", "-a", help="every page, not the first")
]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="K=V", help="a param value (repeatable)"),
]
EnvOpt = Annotated[
    list[str] | None,
    typer.Option("--env", "-e", metavar="K=V", help="an environment variable (repeatable)"),
]


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()


def output_of(ctx: typer.Context, output: Output | None) -> Output:
    return output if output is not None else state(ctx).output


def connect(ctx: typer.Context, server: str | None) -> Client:
    """A client of the server named here, globally, by ``HERDER_URL``, or the default."""
    return Client(server if server else state(ctx).server)


def pairs(values: list[str] | None, option: str) -> dict[str, str]:
    """``["k=v", …]`` as a dict; a value without ``=`` or with an empty key is a usage error."""
    result: dict[str, str] = {}
    for item in values or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {item[:80]!r}", param_hint=option)
        result[key.strip()] = value
    return result


def exit_code_for(run: Mapping[str, Any]) -> int:
    """The shell exit code that stands for how a run ended.

    The run's own exit code when it has one (APP_ERROR), 128+N for a process killed by signal N
    (reported as -N), the documented code for other endings, and 1 for anything else. A failed
    run never maps to 0.
    """
    status = str(run.get("status") or "")
    code = run.get("exit_code")
    if status == "SUCCESS":
        return 0
    if status == "APP_ERROR" and isinstance(code, int) and not isinstance(code, bool):
        if code < 0:
            code = 128 + min(-code, 127)
        return code if 0 < code <= 255 else 1
    return STATUS_EXIT.get(status, 1)


def is_terminal(run: Mapping[str, Any]) -> bool:
    """Terminal means code 400 or more; a name is enough when an older server sends no code."""
    code = run.get("status_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return code >= 400
    return str(run.get("status")) in _TERMINAL_NAMES
