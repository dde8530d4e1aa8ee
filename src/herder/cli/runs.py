"""``herder run``, ``runs``, ``logs``, ``cancel`` and ``retry``: starting and watching runs."""

from __future__ import annotations

import enum
import os
import sys
import time
from contextlib import nullcontext
from datetime import UTC, datetime, timedelta
from typing import IO, Annotated, Any

import typer
from rich.live import Live

from herder.cli import render
from herder.cli.client import ApiError, Client, CliError
from herder.cli.common import (
    AllPagesOpt,
    EnvOpt,
    OutputOpt,
    ParamOpt,
    ServerOpt,
    connect,
    exit_code_for,
    is_terminal,
    output_of,
    pairs,
)
from herder.cli.render import Output
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.runs import RunStatus

FIRST_POLL = 0.05
MAX_POLL = 1.0

RunArg = Annotated[int, typer.Argument(metavar="RUN", help="the run's id", show_default=False)]
WaitOpt = Annotated[bool, typer.Option("--wait", "-w", help="wait for the run to end")]
FollowOpt = Annotated[
    bool,
    typer.Option("--follow", "-f", help="print the run's log as it is written, then wait"),
]


class LogStream(enum.StrEnum):
    STDOUT = "stdout"
    STDERR = "stderr"


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("runs")(runs)
    app.command("logs")(logs)
    app.command("cancel")(cancel)
    app.command("retry")(retry)
    app.command("approve")(approve)


def run(
    ctx: typer.Context,
    job: Annotated[str, typer.Argument(metavar="JOB", help="id, namespace/name, or a name")],
    param: ParamOpt = None,
    env: EnvOpt = None,
    wait: WaitOpt = False,
    follow: FollowOpt = False,
    file: Annotated[
        list[str] | None,
        typer.Option("--file", metavar="NAME=PATH",
                     help="attach an input file, found by the run in $HERDER_INPUTS/NAME "
                     "(repeatable)"),
    ] = None,
    manual: Annotated[
        bool,
        typer.Option("--manual", help="create the run waiting for `herder approve RUN`"),
    ] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Run a job now; print the new run's id, or wait and exit with the run's exit code.

    With --wait or --follow the exit code is the run's own (see `herder --help`).

    --follow writes the log to stdout (to stderr with -o json or yaml: stdout keeps the run).

    With --file the run is created waiting, given its files, then sent on (with --manual it
    stays waiting for `herder approve`).
    """
    params, envs = pairs(param, "--param"), pairs(env, "--env")
    files = pairs(file, "--file")
    for name, path in files.items():
        if not os.path.isfile(path):
            raise typer.BadParameter(f"{name}={path}: no such file", param_hint="--file")
    with connect(ctx, server) as api:
        created = api.start_run(job, params=params, env=envs, manual=manual or bool(files))
        if files:
            attach(api, int(created["id"]), files)
            if not manual:
                created = api.approve_run(int(created["id"]))
        if manual and not (wait or follow) and output_of(ctx, output) is Output.TABLE:
            render.hint(f"run {created['id']} waits for `herder approve {created['id']}`")
        finish(api, created, output_of(ctx, output), wait=wait, follow=follow)


def attach(api: Client, run_id: int, files: dict[str, str]) -> None:
    """Give a waiting run its files; if one is refused, the run is cancelled (never left
    waiting without its files)."""
    try:
        for name, path in files.items():
            with open(path, "rb") as content:
                api.put_run_file(run_id, name, content)
    except (CliError, OSError) as exc:
        api.cancel_run(run_id, force=True)
        message = exc.message if isinstance(exc, CliError) else str(exc)
        raise CliError(f"{message}\nrun {run_id} was cancelled: it did not get its files",
                       exit_code=getattr(exc, "exit_code", 1)) from None


def approve(
    ctx: typer.Context, run_id: RunArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Send on a run waiting for a person (ACTION_PENDING); it starts as its job's concurrency
    policy lets it."""
    with connect(ctx, server) as api:
        run = api.approve_run(run_id)
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(run, fmt)
        return
    render.out().print(render.run_line(run), soft_wrap=True)


def retry(
    ctx: typer.Context,
    run_id: RunArg,
    wait: WaitOpt = False,
    follow: FollowOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Run a finished run again, as a new run linked to it; print the new run's id."""
    with connect(ctx, server) as api:
        created = api.retry_run(run_id)
        finish(api, created, output_of(ctx, output), wait=wait, follow=follow)


def finish(api: Client, run: dict[str, Any], fmt: Output, *, wait: bool, follow: bool) -> None:
    """Show a run just created; with ``wait``/``follow`` watch it and exit as it ended."""
    if not (wait or follow):
        if fmt is Output.TABLE:
            typer.echo(run.get("id"))
            if run.get("reason"):  # e.g. waiting for lock db (held by run 812)
                render.hint(f"run {run.get('id')}: {run['reason']}")
        else:
            render.emit(run, fmt)
        return
    run_id = int(run["id"])
    try:
        if follow:
            log_to = _binary(sys.stdout if fmt is Output.TABLE else sys.stderr)
            follow_log(api, run_id, to=log_to)
        run = wait_for_end(api, run)
    except KeyboardInterrupt:
        render.hint(f"stopped watching run {run_id}; it goes on (`herder cancel {run_id}` ends it)")
        raise typer.Exit(130) from None
    if fmt is not Output.TABLE:
        render.emit(run, fmt)
    elif follow:
        render.err().print(render.run_line(run), soft_wrap=True)
    else:
        render.out().print(render.run_line(run), soft_wrap=True)
    raise typer.Exit(exit_code_for(run))


def wait_for_end(api: Client, run: dict[str, Any]) -> dict[str, Any]:
    """Poll the run (50 ms, doubling up to 1 s) until its status is terminal.

    On a terminal, a live line shows the status and the time spent waiting.
    """
    if is_terminal(run):
        return run
    run_id = int(run["id"])
    console = render.err()
    line = render.WaitLine(run, time.monotonic())
    live = console.is_terminal and not console.is_dumb_terminal
    delay = FIRST_POLL
    with Live(line, console=console, transient=True) if live else nullcontext():
        while not is_terminal(run):
            time.sleep(delay)
            delay = min(delay * 2, MAX_POLL)
            run = api.get_run(run_id)
            line.run = run
    return run


def follow_log(api: Client, run_id: int, *, to: IO[bytes]) -> None:
    """Copy the followed log until the server ends it; a broken stream is only a warning."""
    try:
        copy_log(api, run_id, to=to, follow=True)
    except ApiError:
        raise
    except CliError as exc:
        render.hint(f"the log stream broke off ({exc.message}); waiting for the run to end")


def copy_log(
    api: Client, run_id: int, *, to: IO[bytes], stream: str | None = None, follow: bool = False
) -> None:
    with api.log(run_id, stream=stream, follow=follow) as chunks:
        for chunk in chunks:
            to.write(chunk)
            to.flush()


def _binary(stream: IO[str]) -> IO[bytes]:
    """The byte stream under a text stream, flushed first so output keeps its order."""
    stream.flush()
    buffer: IO[bytes] | None = getattr(stream, "buffer", None)
    if buffer is None:
        raise CliError("this output stream takes no bytes; redirect it to a file")
    return buffer


def logs(
    ctx: typer.Context,
    run_id: RunArg,
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="keep printing until the run ends; exit as it did"),
    ] = False,
    stream: Annotated[
        LogStream | None,
        typer.Option("--stream", help="only this stream (default: both, interleaved)"),
    ] = None,
    server: ServerOpt = None,
) -> None:
    """Print a run's log, bytes as they are (binary-safe)."""
    with connect(ctx, server) as api:
        out = _binary(sys.stdout)
        try:
            copy_log(api, run_id, to=out, stream=stream.value if stream else None, follow=follow)
            if not follow:
                return
            run = wait_for_end(api, api.get_run(run_id))
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        render.err().print(render.run_line(run), soft_wrap=True)
        raise typer.Exit(exit_code_for(run))


def moment_arg(value: str | None, option: str) -> str | None:
    """``1d``/``2h30m`` (that long ago) or a date and time (local time when it has no offset),
    as the ISO 8601 UTC the API takes."""
    if value is None:
        return None
    try:
        return (datetime.now(UTC) - timedelta(seconds=parse_duration(value))).isoformat()
    except InvalidSpec:
        pass
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise typer.BadParameter(
            f"{value[:40]!r} is neither a duration ('1d', '2h') nor a time ('2026-11-23 08:00')",
            param_hint=option,
        ) from None
    return moment.astimezone(UTC).isoformat()


def runs(
    ctx: typer.Context,
    job: Annotated[
        str | None, typer.Option("--job", "-j", metavar="JOB", help="runs of this job")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    status: Annotated[
        list[str] | None,
        typer.Option("--status", "-s", metavar="STATUS", help="a status name or code (repeatable)"),
    ] = None,
    trigger: Annotated[
        str | None,
        typer.Option(
            "--trigger", "-t", help="schedule, manual, api, retry, workflow, event, chain"
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option("--label", "-l", metavar="K=V", help="a label of the run (repeatable)"),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="WHEN", help="created since: '1d', '2h' ago, or a time"),
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", metavar="WHEN", help="created before: as --since")
    ] = None,
    submitter: Annotated[str | None, typer.Option("--submitter", help="who asked for it")] = None,
    text: Annotated[
        str | None, typer.Option("--query", "-q", help="text in the job's name or description")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="runs per page")] = None,
    all_pages: AllPagesOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List runs, newest first, filtered."""
    try:
        statuses = [RunStatus.parse(s).value for s in status or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--status") from None
    query = {
        "job": job,
        "namespace": namespace,
        "status": statuses,
        "trigger": trigger,
        "label": list(label or ()),
        "since": moment_arg(since, "--since"),
        "until": moment_arg(until, "--until"),
        "submitter": submitter,
        "q": text,
        "limit": limit,
    }
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = api.list_runs(query, all_pages=all_pages)
    render.page(found, fmt, render.runs_table, "runs")


def cancel(
    ctx: typer.Context,
    run_id: RunArg,
    force: Annotated[
        bool, typer.Option("--force", help="kill at once instead of asking it to stop")
    ] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Stop a run (SIGTERM, then SIGKILL after the grace time; --force kills at once)."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        result = api.cancel_run(run_id, force=force)
    if fmt is not Output.TABLE:
        render.emit(result, fmt)
        return
    line = render.run_line(result)
    if not is_terminal(result):
        line.append("  (cancel requested; it stops shortly)", style="dim")
    render.out().print(line, soft_wrap=True)
