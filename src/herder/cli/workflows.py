"""``herder workflow …``: create, list, show and delete workflow definitions; the commands of
workflow runs (``run``, ``runs``, ``show --run``, the controls) are in ``workflow_runs``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from herder.cli import render, workflow_runs
from herder.cli.client import ApiError, CliError
from herder.cli.common import AllPagesOpt, OutputOpt, ServerOpt, connect, output_of, pairs
from herder.cli.jobs import delete_object, set_enabled
from herder.cli.manifests import read_object_file
from herder.cli.render import Output

app = typer.Typer(
    name="workflow",
    help="Workflows, graphs of steps that run jobs or commands: create, list, show, delete, "
    "enable and disable them; run them, list their runs, watch a run as a tree and steer it.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

WorkflowArg = Annotated[
    str, typer.Argument(metavar="WORKFLOW", help="id, namespace/name, or a name in 'default'")
]


@app.command("create")
def create(
    ctx: typer.Context,
    file: Annotated[
        Path,
        typer.Option(
            "--file", "-f", metavar="FILE",
            help="a workflow as JSON or YAML (a kind: Workflow manifest too); - reads stdin",
        ),
    ],
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Create a workflow from a file; the server checks its graph and the jobs it runs."""
    fmt = output_of(ctx, output)
    body = read_object_file(file, "Workflow")
    with connect(ctx, server) as api:
        found = api.create_workflow(body)
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    render.hint(f"created workflow {found.get('ref')} (id {found.get('id')})")
    render.out().print(workflow_panel(found))


@app.command("list")
def list_workflows(
    ctx: typer.Context,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n")] = None,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", metavar="K=V", help="repeatable")
    ] = None,
    query: Annotated[str | None, typer.Option("--query", "-q", help="text to search for")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="per page")] = None,
    all_pages: AllPagesOpt = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """List workflows."""
    labels = [f"{k}={v}" for k, v in pairs(label, "--label").items()]
    params = {"namespace": namespace, "label": labels, "q": query, "limit": limit}
    with connect(ctx, server) as api:
        found = api.list_workflows(params, all_pages=all_pages)
    render.page(found, output_of(ctx, output), workflows_table, "workflows")


@app.command("show")
def show(
    ctx: typer.Context,
    workflow: Annotated[
        str | None,
        typer.Argument(metavar="WORKFLOW", help="id, namespace/name, or a name in 'default'",
                       show_default=False),
    ] = None,
    run: Annotated[
        int | None,
        typer.Option("--run", "-r", metavar="ID", min=1, show_default=False,
                     help="show this workflow run instead: its steps as a tree, live statuses"),
    ] = None,
    watch: Annotated[
        bool,
        typer.Option("--watch", "-w", help="with --run: redraw until the run ends, then exit 0 "
                     "if it succeeded, 1 if not"),
    ] = False,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Show a workflow (its steps, what each does and needs) or, with --run ID, a workflow run:
    each step under what it needs, with its status and the run id `herder logs` takes."""
    if (workflow is None) == (run is None):
        raise typer.BadParameter("give a WORKFLOW, or --run ID for a workflow run",
                                 param_hint="WORKFLOW")
    if run is not None:
        workflow_runs.show_run(ctx, run, watch=watch, server=server, output=output)
        return
    if watch:
        raise typer.BadParameter("--watch follows a workflow run: give --run ID",
                                 param_hint="--watch")
    assert workflow is not None
    fmt = output_of(ctx, output)
    with connect(ctx, server) as api:
        try:
            found = api.get_workflow(workflow)
        except ApiError as exc:
            if exc.status != 404:
                raise
            raise CliError(f"{exc.message}\nto show a workflow run, give its id as --run ID "
                           "(`herder workflow runs` lists them)") from None
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    render.out().print(workflow_panel(found))


@app.command("delete")
def delete(
    ctx: typer.Context,
    workflow: WorkflowArg,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask")] = False,
    server: ServerOpt = None,
) -> None:
    """Delete a workflow definition."""
    delete_object(ctx, "workflow", workflow, yes=yes, server=server)


@app.command("enable")
def enable(
    ctx: typer.Context, workflow: WorkflowArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Resume a workflow's schedule."""
    set_enabled(ctx, "workflow", workflow, True, server, output)


@app.command("disable")
def disable(
    ctx: typer.Context, workflow: WorkflowArg, server: ServerOpt = None, output: OutputOpt = None
) -> None:
    """Pause a workflow's schedule; nothing is lost, `enable` resumes it."""
    set_enabled(ctx, "workflow", workflow, False, server, output)


workflow_runs.register(app)


# -- rendering --------------------------------------------------------------------------------


def workflows_table(workflows: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("WORKFLOW", overflow="ellipsis")
    table.add_column("STEPS", justify="right", no_wrap=True)
    table.add_column("ENABLED", no_wrap=True)
    table.add_column("NEXT RUN", no_wrap=True)
    for workflow in workflows:
        steps = workflow.get("steps")
        table.add_row(
            render.cell(workflow.get("id")),
            render.cell(workflow.get("ref")),
            render.cell(len(steps) if isinstance(steps, list) else "?"),
            Text("yes", style="green") if workflow.get("enabled") else Text("no", style="yellow"),
            render.next_run(workflow),
        )
    return table


def does(step: Mapping[str, Any]) -> str:
    """What a step does, in a few words."""
    if step.get("job") is not None:
        return f"job {step['job']}"
    if step.get("workflow") is not None:
        return f"workflow {step['workflow']}"
    if step.get("approval") is not None:
        message = (step.get("approval") or {}).get("message") or ""
        return f"approval{': ' + message if message else ''}"
    return render.command_text(step.get("command"))


def needs(step: Mapping[str, Any]) -> str:
    shown = []
    for need in step.get("needs") or []:
        if isinstance(need, Mapping):
            on = need.get("on", "success")
            shown.append(str(need.get("step")) + ("" if on == "success" else f" ({on})"))
    return ", ".join(shown) or "-"


def _notes(step: Mapping[str, Any]) -> str:
    notes = []
    if step.get("foreach") is not None:
        limit = step.get("parallelism")
        notes.append(f"foreach {step['foreach']}" + (f" ({limit} at once)" if limit else ""))
    if step.get("timeout"):
        notes.append(f"timeout {render.elapsed(float(step['timeout']))}")
    if step.get("retries"):
        notes.append(f"retries {step['retries'].get('limit')}")
    return "; ".join(notes)


def steps_tree(workflow: Mapping[str, Any], section: str = "steps") -> Tree:
    """The graph as a tree: steps that need nothing at the root, each step under the steps it
    needs (with the condition when it is not success); a step met again is named, not
    repeated."""
    steps = [s for s in workflow.get(section) or [] if isinstance(s, Mapping)]
    below: dict[str, list[tuple[Mapping[str, Any], str]]] = {str(s.get("name")): [] for s in steps}
    for step in steps:
        for need in step.get("needs") or []:
            if isinstance(need, Mapping) and str(need.get("step")) in below:
                below[str(need["step"])].append((step, str(need.get("on", "success"))))
    tree = Tree(Text("on failure" if section == "on_failure" else "steps", style="bold"))
    shown: set[str] = set()

    def add(parent: Tree, step: Mapping[str, Any], on: str) -> None:
        name = str(step.get("name"))
        label = Text(name, style="bold")
        if on != "success":
            label.append(" (always)" if on == "always" else f" (on {on})", style="yellow")
        if name in shown:
            parent.add(label.append(" …", style="dim"))
            return
        shown.add(name)
        label.append(f"  {does(step)}")
        notes = _notes(step)
        if notes:
            label.append(f"  [{notes}]", style="dim")
        branch = parent.add(label)
        for child, condition in below[name]:
            add(branch, child, condition)

    for step in steps:
        if not step.get("needs"):
            add(tree, step, "success")
    return tree


def workflow_panel(workflow: Mapping[str, Any]) -> RenderableType:
    """The graph in a panel titled with the workflow, and its settings beneath."""
    title = Text(str(workflow.get("ref")), style="bold")
    settings = Text.assemble(
        ("id ", "dim"), render.cell(workflow.get("id")),
        ("  parallelism ", "dim"), render.cell(workflow.get("parallelism") or "no limit"),
        ("  enabled ", "dim"), "yes" if workflow.get("enabled") else "no",
        ("  next run ", "dim"), render.next_run(workflow),
        ("  updated ", "dim"), render.relative(workflow.get("updated_at")),
    )
    trees: list[RenderableType] = [steps_tree(workflow)]
    if workflow.get("on_failure"):
        trees.append(steps_tree(workflow, "on_failure"))
    parts: list[RenderableType] = [Panel(Group(*trees), title=title, title_align="left"),
                                   settings]
    parts.extend(Text.assemble((f"{key} ", "dim"), json.dumps(workflow[key]))
                 for key in ("params", "schedule") if workflow.get(key))
    return Group(*parts)
