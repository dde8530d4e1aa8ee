"""``herder workflow run|runs|pause|resume|cancel|rerun|skip|retry|approve|reject`` and the
run form of ``show``: starting workflow runs, watching them as a tree, and steering them.

A workflow run ends SUCCESS, FAILED or ABORTED; ``--wait`` and ``--watch`` exit 0 for the first
and 1 for the others, so a script can trust the exit code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from typing import Annotated, Any

import typer
from rich.console import RenderableType
from rich.live import Live
from rich.spinner import Spinner
from rich.text import Text

from herder.cli import render
from herder.cli.client import Client
from herder.cli.common import AllPagesOpt, OutputOpt, ParamOpt, ServerOpt, connect, output_of, pairs
from herder.cli.render import Output
from herder.cli.workflow_render import (
    exit_code,
    is_ended,
    run_line,
    run_tree,
    runs_table,
    status,
)

FIRST_POLL = 0.05
MAX_POLL = 1.0
NESTED_LIMIT = 50  # nested workflow runs fetched for one drawing, however deep

RunIdArg = Annotated[
    int, typer.Argument(metavar="RUN", help="the workflow run's id", show_default=False)
]
StepArg = Annotated[str, typer.Argument(metavar="STEP", help="the step's name")]
WaitOpt = Annotated[
    bool, typer.Option("--wait", "-w", help="wait for the workflow run to end; exit 0 if it "
                       "succeeded, 1 if not")
]


def register(app: typer.Typer) -> None:
    app.command("run")(run_workflow)
    app.command("runs")(list_runs)
    for action, what in (("pause", "Pause a workflow run: running steps go on to their end, "
                          "none starts until `resume`."),
                         ("resume", "Resume a paused workflow run."),
                         ("cancel", "Cancel a workflow run: its active step runs are stopped, "
                          "then it ends ABORTED."),
                         ("rerun", "Run an ended workflow run again as a new one that runs "
                          "what failed and keeps every other step's runs and outputs.")):
        app.command(action, help=what)(_run_control(action))
    for action, what in (("skip", "Skip a step that has not started running."),
                         ("retry", "Run a failed step again (a failed workflow run goes on)."),
                         ("approve", "Approve an approval step waiting for a person."),
                         ("reject", "Reject an approval step waiting for a person (it fails).")):
        app.command(action, help=what)(_step_control(action))


# -- starting and listing -----------------------------------------------------------------


def run_workflow(
    ctx: typer.Context,
    workflow: Annotated[
        str, typer.Argument(metavar="WORKFLOW", help="id, namespace/name, or a name in 'default'")
    ],
    param: ParamOpt = None,
    wait: WaitOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Start a workflow run now; print its id, or with --wait follow it to its end and exit 0
    if it succeeded, 1 if it failed or was cancelled."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        created = api.start_workflow_run(workflow, params=pairs(param, "--param"))
        _finish(api, created, fmt, wait=wait)


def _finish(api: Client, run: dict[str, Any], fmt: Output, *, wait: bool) -> None:
    if not wait:
        if fmt is Output.TABLE:
            typer.echo(run.get("id"))
        else:
            render.emit(run, fmt)
        return
    run_id = int(run["id"])
    try:
        run = wait_for_end(api, run)
    except KeyboardInterrupt:
        _stopped(run_id)
    if fmt is not Output.TABLE:
        render.emit(run, fmt)
    else:
        render.out().print(run_line(run), soft_wrap=True)
    raise typer.Exit(exit_code(run))


def _stopped(run_id: int) -> None:
    render.hint(f"stopped watching workflow run {run_id}; it goes on "
                f"(`herder workflow cancel {run_id}` ends it)")
    raise typer.Exit(130)


class _WaitLine:
    """The live line while waiting (a terminal only): spinner, run, status, how long it has
    run, steps ended."""

    def __init__(self, run: Mapping[str, Any]) -> None:
        self.run = run
        self._spinner = Spinner("dots", style="cyan")

    def __rich__(self) -> RenderableType:
        steps = [s for s in self.run.get("steps") or [] if isinstance(s, Mapping)]
        ended = sum(1 for s in steps if s.get("ended"))
        self._spinner.update(text=Text.assemble(
            run_line(self.run), (f"  {ended}/{len(steps)} steps ended" if steps else "", "dim"),
        ))
        return self._spinner


def wait_for_end(api: Client, run: dict[str, Any]) -> dict[str, Any]:
    """Poll the workflow run (50 ms, doubling up to 1 s) until it has ended; say once which
    approvals it waits for whenever that changes."""
    run_id = int(run["id"])
    console = render.err()
    line = _WaitLine(run)
    live = console.is_terminal and not console.is_dumb_terminal
    delay = FIRST_POLL
    pending: list[str] = []
    with Live(line, console=console, transient=True) if live else nullcontext() as screen:
        while not is_ended(run):
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL)
            run = api.get_workflow_run(run_id)
            line.run = run
            waiting = [str(s.get("id")) for s in run.get("steps") or []
                       if isinstance(s, Mapping) and s.get("status") == "ACTION_PENDING"]
            if waiting and waiting != pending:
                text = ", ".join(f"`herder workflow approve {run_id} {name}`" for name in waiting)
                (screen.console if isinstance(screen, Live) else console).print(
                    Text(f"workflow run {run_id} waits for a person: {text}", style="dim"),
                    soft_wrap=True)
            pending = waiting
    return run


def list_runs(
    ctx: typer.Context,
    workflow: Annotated[
        str | None,
        typer.Argument(metavar="WORKFLOW", help="only the runs of this workflow",
                       show_default=False),
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", metavar="STATUS",
                     help="RUNNING, ACTION_PENDING, PAUSED, CANCELLING, FAILING, SUCCESS, FAILED "
                     "or ABORTED (repeatable)"),
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="runs per page")] = None,
    all_pages: AllPagesOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List workflow runs, newest first."""
    query = {"workflow": workflow, "namespace": namespace,
             "status": [s.strip().upper() for s in status or ()], "limit": limit}
    with connect(ctx, server) as api:
        if workflow is not None:
            ref = workflow if "/" in workflow or namespace is None else f"{namespace}/{workflow}"
            api.get_workflow(ref)  # an unknown workflow is an error, not an empty list
        found = api.list_workflow_runs(query, all_pages=all_pages)
    render.page(found, output_of(ctx, output), runs_table, "workflow runs")


# -- show --run, --watch -------------------------------------------------------------------


def graphs(api: Client, run_id: int) -> dict[int, dict[str, Any]]:
    """The run's graph and those of its nested workflow runs, however deep, by run id."""
    found: dict[int, dict[str, Any]] = {}
    todo = [run_id]
    while todo and len(found) < NESTED_LIMIT:
        current = todo.pop(0)
        if current in found:
            continue
        found[current] = api.workflow_run_graph(current)
        todo.extend(int(node["child"]) for node in found[current].get("nodes") or []
                    if isinstance(node, Mapping) and isinstance(node.get("child"), int))
    return found


def _timeless(value: Any) -> Any:
    """The graph without its times: what a change of the drawing is measured on."""
    if isinstance(value, Mapping):
        return {k: _timeless(v) for k, v in value.items() if not str(k).endswith("_at")}
    if isinstance(value, list):
        return [_timeless(v) for v in value]
    return value


def show_run(ctx: typer.Context, run_id: int, *, watch: bool, server: str | None,
             output: Output | None) -> None:
    """``herder workflow show --run ID [--watch]``."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        try:
            drawn = graphs(api, run_id)
            if watch:
                drawn = _watch(api, run_id, drawn, fmt)
        except KeyboardInterrupt:
            _stopped(run_id)
    top = drawn[run_id]
    if fmt is not Output.TABLE:
        render.emit(top, fmt)
    elif not watch:
        render.out().print(run_tree(run_id, drawn))
    if watch:
        raise typer.Exit(exit_code(top["run"]))


def _watch(api: Client, run_id: int, drawn: dict[int, dict[str, Any]],
           fmt: Output) -> dict[int, dict[str, Any]]:
    """Re-read the graphs until the run ends: redrawn in place on a terminal, printed again
    only when something changed otherwise (nothing is printed for -o json/yaml)."""
    console = render.out()
    live = fmt is Output.TABLE and console.is_terminal and not console.is_dumb_terminal
    show: Callable[[dict[int, dict[str, Any]]], None]
    if fmt is not Output.TABLE:
        def show(_: dict[int, dict[str, Any]]) -> None:
            pass
    elif live:
        screen = Live(run_tree(run_id, drawn), console=console, refresh_per_second=4)

        def show(now: dict[int, dict[str, Any]]) -> None:
            screen.update(run_tree(run_id, now))
    else:
        console.print(run_tree(run_id, drawn))
        last = json.dumps(_timeless(drawn), sort_keys=True)

        def show(now: dict[int, dict[str, Any]]) -> None:
            nonlocal last
            changed = json.dumps(_timeless(now), sort_keys=True)
            if changed != last:
                console.print()
                console.print(run_tree(run_id, now))
                last = changed
    delay = FIRST_POLL
    with screen if live else nullcontext():
        while not is_ended(drawn[run_id]["run"]):
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL)
            drawn = graphs(api, run_id)
            show(drawn)
    return drawn


# -- controls ------------------------------------------------------------------------------


def _run_control(action: str) -> Callable[..., None]:
    def control(
        ctx: typer.Context, run_id: RunIdArg, server: ServerOpt = None, output: OutputOpt = None
    ) -> None:
        fmt = output_of(ctx, output)
        with connect(ctx, server) as api:
            result = api.control_workflow_run(run_id, action)
        _answer(result, fmt)

    control.__name__ = action
    return control


def _step_control(action: str) -> Callable[..., None]:
    def control(
        ctx: typer.Context, run_id: RunIdArg, step: StepArg, server: ServerOpt = None,
        output: OutputOpt = None,
    ) -> None:
        fmt = output_of(ctx, output)
        with connect(ctx, server) as api:
            result = api.control_workflow_run(run_id, action, step=step)
            if fmt is Output.TABLE:
                detail = api.get_workflow_run(run_id)
                node = next((s for s in detail.get("steps") or []
                             if isinstance(s, Mapping) and s.get("id") == step), None)
                if node is not None:
                    render.out().print(Text.assemble(
                        f"step {step} ", status(node.get("status"))), soft_wrap=True)
        _answer(result, fmt)

    control.__name__ = action
    return control


def _answer(run: Mapping[str, Any], fmt: Output) -> None:
    if fmt is not Output.TABLE:
        render.emit(run, fmt)
        return
    render.out().print(run_line(run), soft_wrap=True)
