"""``herder lock …``: list locks, show who holds one and who waits, take one from a run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from herder.cli import render
from herder.cli.client import API, CliError, object_path
from herder.cli.common import AllPagesOpt, OutputOpt, ServerOpt, connect, output_of
from herder.cli.render import Output, cell, relative

app = typer.Typer(
    name="lock",
    help="List locks, show their holders and waiters, and take a lock from a run (admin).",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

LockArg = Annotated[
    str, typer.Argument(metavar="LOCK", help="namespace/name, or a name in 'default'")
]
NamespaceOpt = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="the lock's namespace (instead of namespace/name)",
                 show_default=False),
]


def lock_path(ref: str, namespace: str | None = None, *suffix: str) -> str:
    """The API path of a lock given as ``namespace/name`` or a name (in ``--namespace`` or
    ``default``)."""
    if namespace and "/" not in ref:
        ref = f"{namespace}/{ref}"
    return object_path("lock", ref, *suffix, forms="a name or namespace/name")


@app.command("list")
def list_locks(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    all_pages: AllPagesOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List locks: slots, holders and how many runs wait."""
    with connect(ctx, server) as api:
        found = api.pages(f"{API}/locks", {"namespace": namespace}, all_pages=all_pages)
    render.page(found, output_of(ctx, output), locks_table, "locks")


@app.command("show")
def show(
    ctx: typer.Context,
    lock: LockArg,
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Show a lock: its holders (run, job, since) and its waiters, first in line first."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        found = _object(api.get(lock_path(lock, namespace)))
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    render.out().print(lock_panel(found))


@app.command("release")
def release(
    ctx: typer.Context,
    lock: LockArg,
    run_id: Annotated[int, typer.Argument(metavar="RUN", help="the id of the run holding it")],
    namespace: NamespaceOpt = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Take a lock from the run holding it (admin). The run goes on without it; the next
    waiters get the lock at once."""
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        after = _object(api.request("DELETE", lock_path(lock, namespace, "holders", str(run_id))))
    if fmt is not Output.TABLE:
        render.emit(after, fmt)
        return
    render.hint(f"lock {after.get('ref')} taken from run {run_id}; the run goes on")
    render.out().print(lock_panel(after))


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise CliError("the server answered something that is not a lock")
    return body


def _runs(claims: Any) -> str:
    ids = [str(c.get("run")) for c in claims or () if isinstance(c, Mapping)]
    return ", ".join(ids[:5]) + (f" +{len(ids) - 5}" if len(ids) > 5 else "") if ids else "-"


def locks_table(locks: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("LOCK", overflow="ellipsis")
    table.add_column("SLOTS", justify="right", no_wrap=True)
    table.add_column("HELD", justify="right", no_wrap=True)
    table.add_column("HOLDERS", overflow="ellipsis")
    table.add_column("WAITING", justify="right", no_wrap=True)
    table.add_column("JOBS", overflow="ellipsis")
    for lock in locks:
        holders, waiters = lock.get("holders") or [], lock.get("waiters") or []
        full = len(holders) >= int(lock.get("slots") or 1)
        table.add_row(
            cell(lock.get("ref")),
            cell(lock.get("slots")),
            Text(str(len(holders)), style="yellow" if full else "green"),
            _runs(holders),
            cell(len(waiters)),
            ", ".join(str(j) for j in lock.get("jobs") or ()) or "-",
        )
    return table


def _claims_table(claims: list[Any], *, position: bool) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    if position:
        table.add_column("#", justify="right", no_wrap=True)
    table.add_column("RUN", justify="right", no_wrap=True)
    table.add_column("JOB", overflow="ellipsis")
    table.add_column("SINCE", no_wrap=True)
    for i, claim in enumerate(claims, start=1):
        row = [cell(claim.get("run")), cell(claim.get("job")), relative(claim.get("since"))]
        table.add_row(*([str(i)] if position else []), *row)
    return table


def lock_panel(lock: Mapping[str, Any]) -> RenderableType:
    holders, waiters = lock.get("holders") or [], lock.get("waiters") or []
    slots = lock.get("slots")
    kind = "mutex" if slots == 1 else f"semaphore of {slots} slots"
    parts: list[RenderableType] = [
        Text.assemble((str(lock.get("ref")), "bold"), (f"  {kind}", "dim"),
                      ("  declared by ", "dim"), ", ".join(lock.get("jobs") or ()) or "no job"),
        Text(f"\nheld by {len(holders)} of {slots}", style="bold"),
        _claims_table(holders, position=False) if holders else Text("nobody", style="dim"),
        Text(f"\nwaiting ({len(waiters)})", style="bold"),
        _claims_table(waiters, position=True) if waiters else Text("nobody", style="dim"),
    ]
    return Group(*parts)
