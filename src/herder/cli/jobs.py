"""``herder job …``: create, list, show, delete, enable and disable jobs; read a schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from herder.cli import render, schedules
from herder.cli.bundles import script_of
from herder.cli.client import ApiError, Client, CliError, job_path
from herder.cli.common import (
    AllPagesOpt,
    EnvOpt,
    OutputOpt,
    ParamOpt,
    ServerOpt,
    connect,
    output_of,
    pairs,
)
from herder.cli.manifests import from_manifest as from_manifest  # kept importable from here
from herder.cli.manifests import read_job_file
from herder.cli.render import Output
from herder.model.chains import ON
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.policies import CONCURRENCY
from herder.model.schedules import POLICIES

app = typer.Typer(
    name="job",
    help="Create, list, show, delete, enable and disable jobs; see what their schedule did.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

JobArg = Annotated[
    str, typer.Argument(metavar="JOB", help="id, namespace/name, or a name in 'default'")
]
LabelOpt = Annotated[
    list[str] | None, typer.Option("--label", "-l", metavar="K=V", help="a label (repeatable)")
]
_SCHEDULE = "Schedule"
_POLICY = "Runs: concurrency and retries"


def _choice(value: str | None, allowed: tuple[str, ...], option: str) -> str | None:
    """A usage error (exit 2) for a value the server would refuse anyway."""
    if value is not None and value not in allowed:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(allowed)}", param_hint=option)
    return value


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Argument(metavar="NAME", help="the job's name")] = None,
    argv: Annotated[
        list[str] | None,
        typer.Argument(metavar="[-- PROG ARGS...]", help="the command as argv, after '--'"),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            "-f",
            metavar="FILE",
            help="a job as JSON or YAML (a manifest too); - reads stdin",
        ),
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="the command as one shell string")
    ] = None,
    script: Annotated[
        str | None,
        typer.Option("--script", "-s", metavar="BUNDLE[:ENTRYPOINT]",
                     help="run an uploaded bundle (an id or a unique prefix) instead of a "
                     "command"),
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    description: Annotated[str | None, typer.Option("--description", "-d")] = None,
    backend: Annotated[
        str | None, typer.Option("--backend", help="e.g. local (the default)")
    ] = None,
    timeout: Annotated[
        str | None, typer.Option("--timeout", help="stop runs after this long, e.g. 90s, 1h")
    ] = None,
    param: ParamOpt = None,
    env: EnvOpt = None,
    label: LabelOpt = None,
    disabled: Annotated[bool, typer.Option("--disabled", help="create it paused")] = False,
    cron: Annotated[
        str | None,
        typer.Option(
            "--cron",
            metavar="EXPR",
            help="fire on a cron expression, e.g. '0 3 * * *' (6 fields: seconds first)",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    every: Annotated[
        str | None,
        typer.Option(
            "--every",
            metavar="DURATION",
            help="fire at a fixed interval, e.g. 30s, 1h",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            metavar="ISO",
            help="fire once, e.g. 2026-12-01T10:00:00Z",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            "--tz",
            metavar="ZONE",
            help="the zone a cron is read in, e.g. Europe/Rome (default UTC)",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    jitter: Annotated[
        str | None,
        typer.Option(
            "--jitter",
            metavar="DURATION",
            help="delay each run by up to this much, to spread load",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    misfire: Annotated[
        str | None,
        typer.Option(
            "--misfire",
            metavar="skip|run_once|run_all",
            callback=lambda v: _choice(v, POLICIES, "--misfire"),
            help="what to do with slots found late (default run_once)",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    misfire_grace: Annotated[
        str | None,
        typer.Option(
            "--misfire-grace",
            metavar="DURATION",
            help="how late a slot may be and still count as on time (default 60s)",
            rich_help_panel=_SCHEDULE,
        ),
    ] = None,
    concurrency: Annotated[
        str | None,
        typer.Option(
            "--concurrency",
            metavar="allow|forbid|replace|queue",
            callback=lambda v: _choice(v, CONCURRENCY, "--concurrency"),
            help="what a new run does while --max-active runs are active (default allow)",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    max_active: Annotated[
        int | None,
        typer.Option(
            "--max-active",
            metavar="N",
            help="active runs at once under forbid, replace, queue (default 1)",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    retries: Annotated[
        int | None,
        typer.Option(
            "--retries",
            metavar="N",
            help="retry a failed run up to N times",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    retry_backoff: Annotated[
        str | None,
        typer.Option(
            "--retry-backoff",
            metavar="DURATION",
            help="wait before the first retry, doubled each time (default 10s)",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    lock: Annotated[
        list[str] | None,
        typer.Option(
            "--lock",
            metavar="NAME[:SLOTS]",
            help="a lock its runs hold while they run: a mutex, or a semaphore of SLOTS "
            "(repeatable; see docs/locks.md)",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    after: Annotated[
        list[str] | None,
        typer.Option(
            "--after",
            metavar="JOB[:success|failure|always]",
            help="run when a run of JOB (a name, or namespace/name) ends so; default success "
            "(repeatable; see job chains in docs/scheduling.md)",
            rich_help_panel=_POLICY,
        ),
    ] = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create a job from a file, or from a NAME and a command.

    A shell string: `herder job create backup --command "pg_dump sales > /tmp/s.sql"`

    An argv, as it is: `herder job create backup -- pg_dump -f /tmp/s.sql sales`

    On a schedule: `herder job create backup --cron "0 3 * * *" --tz Europe/Rome -- pg_dump sales`

    After another job: `herder job create load --after extract -- load.sh`

    Options given beside -f FILE override the file's values. The server checks the schedule and
    the policies, and says what is wrong.
    """
    if file is not None:
        if name is not None or argv or command is not None or script is not None:
            raise typer.BadParameter("give either -f FILE or NAME and a command", param_hint="-f")
        body = read_job_file(file)
    elif script is not None:
        if argv or command is not None:
            raise typer.BadParameter("give --script or a command, not both", param_hint="--script")
        if name is None:
            raise typer.BadParameter("give a job NAME (or -f FILE)", param_hint="NAME")
        body = {"name": name, "script": script}
    else:
        body = _body_from_args(name, argv, command)
    overrides: dict[str, Any] = {
        "namespace": namespace,
        "description": description,
        "backend": backend,
        "timeout": _timeout(timeout),
        "enabled": False if disabled else None,
    }
    body.update({k: v for k, v in overrides.items() if v is not None})
    for key, values, option in (
        ("params", param, "--param"),
        ("env", env, "--env"),
        ("labels", label, "--label"),
    ):
        if values:
            body[key] = {**(body.get(key) or {}), **pairs(values, option)}
    _merge(
        body,
        "schedule",
        {"cron": cron, "every": every, "at": at, "timezone": timezone, "jitter": jitter},
        exclusive=("cron", "every", "at"),
    )
    _merge(body, "misfire", {"policy": misfire, "grace": misfire_grace})
    _merge(body, "retries", {"limit": retries, "backoff": retry_backoff})
    policies = {"concurrency": concurrency, "max_active": max_active}
    body.update({k: v for k, v in policies.items() if v is not None})
    if lock:
        body["locks"] = [*(body.get("locks") or []), *(_lock(value) for value in lock)]
    if after:
        body["after"] = [*(body.get("after") or []), *(_after(value) for value in after)]
    with connect(ctx, server) as api:
        if isinstance(body.get("script"), str):
            body["script"] = script_of(api, body["script"])
        job = api.create_job(body)
    _show(job, output_of(ctx, output), created=True)


def _lock(value: str) -> str | dict[str, Any]:
    """``db`` (a mutex) or ``gpu:2`` (a semaphore of 2 slots); the server checks the name."""
    name, sep, slots = value.partition(":")
    if not sep:
        return name
    if not slots.isascii() or not slots.isdigit():
        raise typer.BadParameter(f"{value[:80]!r}: SLOTS is a whole number", param_hint="--lock")
    return {"name": name, "slots": int(slots)}


def _after(value: str) -> dict[str, str]:
    """``extract`` (on success), ``ops/extract:failure``; the server checks the rest."""
    job, sep, on = value.partition(":")
    if sep and on not in ON:
        raise typer.BadParameter(
            f"{value[:80]!r}: the condition after ':' is one of {', '.join(ON)}",
            param_hint="--after",
        )
    return {"job": job, "on": on or "success"}


def _merge(
    body: dict[str, Any], key: str, given: dict[str, Any], *, exclusive: tuple[str, ...] = ()
) -> None:
    """Put the options given into the mapping ``body[key]``, over what a file put there.

    Only what was given is sent: nothing given leaves ``body`` as it was; the server checks the
    result. Giving one of the ``exclusive`` keys (the schedule kinds) drops the file's, so that
    ``--cron`` turns a file's ``every`` schedule into a cron one.
    """
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return
    current = body.get(key)
    if key == "retries" and isinstance(current, int) and not isinstance(current, bool):
        current = {"limit": current}  # the short form: a bare number is the limit
    merged = dict(current) if isinstance(current, dict) else {}
    if any(k in given for k in exclusive):
        merged = {k: v for k, v in merged.items() if k not in exclusive}
    body[key] = {**merged, **given}


def _body_from_args(
    name: str | None, argv: list[str] | None, command: str | None
) -> dict[str, Any]:
    if name is None:
        raise typer.BadParameter("give a job NAME (or -f FILE)", param_hint="NAME")
    if argv and command is not None:
        raise typer.BadParameter("give --command or an argv after '--', not both")
    if not argv and command is None:
        raise typer.BadParameter(
            f"give the command: `--command 'shell string'` or `{name} -- prog args…`",
            param_hint="--command",
        )
    return {"name": name, "command": list(argv) if argv else command}


def _timeout(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value, field="--timeout")
    except InvalidSpec as exc:
        raise typer.BadParameter(exc.message, param_hint="--timeout") from None


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    label: LabelOpt = None,
    enabled: Annotated[
        bool | None,
        typer.Option(
            "--enabled/--disabled", help="only enabled (or only disabled) jobs", show_default=False
        ),
    ] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="text to search for")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="jobs per page")] = None,
    all_pages: AllPagesOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List jobs."""
    labels = [f"{k}={v}" for k, v in pairs(label, "--label").items()]
    params = {
        "namespace": namespace,
        "label": labels,
        "enabled": None if enabled is None else str(enabled).lower(),
        "q": query,
        "limit": limit,
    }
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = api.list_jobs(params, all_pages=all_pages)
    render.page(found, fmt, render.jobs_table, "jobs")


@app.command("show")
def show(
    ctx: typer.Context, job: JobArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Show a job's spec, its last runs and, on a schedule, its next five runs."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = api.get_job(job)
        if fmt is not Output.TABLE:
            render.emit(found, fmt)
            return
        ref = str(found.get("ref") or job)
        page = api.list_runs({"job": ref, "limit": 5})
        more: list[Any] = chains_section(api, found)
        if found.get("schedule"):
            try:
                report = schedule_report(api, ref, recent=0, upcoming=5)
                more = schedules.upcoming_section(found, report)
            except ApiError as exc:  # an older server: the spec and runs are still worth showing
                render.hint(f"cannot list the next runs: {exc.message}")
    render.out().print(render.job_panel(found, page["items"][:5], more=more))


def chains_section(api: Client, job: dict[str, Any]) -> list[Any]:
    """What the job follows and which jobs follow it (job chains), as lines for ``show``."""
    try:
        followers = api.get(job_path(str(job.get("ref")), "followers"))
    except ApiError as exc:  # an older server: the rest is still worth showing
        render.hint(f"cannot list the jobs that follow it: {exc.message}")
        followers = []
    follows = job.get("after") or []
    if not follows and not followers:
        return []
    lines: list[Any] = [Text("\nchains", style="bold")]
    lines += [Text(f"  runs after {e.get('job')} (on {e.get('on')})") for e in follows]
    lines += [Text(f"  followed by {e.get('job')} (on {e.get('on')})")
              for e in (followers if isinstance(followers, list) else [])]
    return lines


@app.command("schedule")
def schedule(
    ctx: typer.Context,
    job: JobArg,
    recent: Annotated[
        int, typer.Option("--recent", min=0, max=1000, help="recent slots to show")
    ] = 20,
    upcoming: Annotated[
        int, typer.Option("--upcoming", min=0, max=1000, help="next slots to show")
    ] = 5,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Why did (or didn't) a job run: its recent slots and what became of each, then the next.

    A slot ran, was skipped (the reason says why: late, a concurrency policy, a pause) or waits.

    Times are on the wall clock of the schedule's time zone, with their UTC offset.
    """
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        report = schedule_report(api, job, recent=recent, upcoming=upcoming)
    if fmt is not Output.TABLE:
        render.emit(report, fmt)
        return
    shown = schedules.schedule_report(report, recent=recent > 0, upcoming=upcoming > 0)
    render.out().print(shown, soft_wrap=True)  # long lines: the terminal wraps them, not Rich


def schedule_report(api: Client, ref: str, *, recent: int, upcoming: int) -> dict[str, Any]:
    """``GET /jobs/{ref}/schedule``: the job's ScheduleReport."""
    report = api.get(job_path(ref, "schedule"), recent=recent, upcoming=upcoming)
    if not isinstance(report, dict):
        raise CliError(f"the server answered {type(report).__name__} where a report was due")
    return report


@app.command("delete")
def delete(
    ctx: typer.Context,
    job: JobArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    server: ServerOpt = None,
) -> None:
    """Delete a job (its past runs stay)."""
    delete_object(ctx, "job", job, yes=yes, server=server)


@app.command("enable")
def enable(
    ctx: typer.Context, job: JobArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Resume a job's schedule."""
    set_enabled(ctx, "job", job, True, server, output)


@app.command("disable")
def disable(
    ctx: typer.Context, job: JobArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Pause a job's schedule; nothing is lost, `enable` resumes it."""
    set_enabled(ctx, "job", job, False, server, output)


def delete_object(
    ctx: typer.Context, kind: str, ref: str, *, yes: bool, server: str | None
) -> None:
    """``herder job|workflow delete``: ask unless ``yes``, delete, say so."""
    if not yes:
        typer.confirm(f"delete {kind} {ref}?", abort=True, err=True)
    with connect(ctx, server) as api:
        api.delete(kind, ref)
    render.out().print(f"deleted {kind} {ref}", markup=False)


def set_enabled(
    ctx: typer.Context, kind: str, ref: str, enabled: bool, server: str | None,
    output: Output | None,
) -> None:
    """``herder job|workflow enable|disable``: set it, say so and when it next runs."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = api.set_enabled(kind, ref, enabled)
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    line = f"{kind} {found.get('ref') or ref} {'enabled' if enabled else 'disabled'}"
    if enabled and found.get("next_run_at"):
        line += f"; next run {render.relative(found['next_run_at'])}"
    render.out().print(line, markup=False)


def _show(job: dict[str, Any], fmt: Output, *, created: bool = False) -> None:
    if fmt is not Output.TABLE:
        render.emit(job, fmt)
        return
    if created:
        render.hint(f"created job {job.get('ref') or job.get('name')} (id {job.get('id')})")
    render.out().print(render.job_panel(job))
