"""How workflow runs look in the terminal: one line per run, the history table, and the run
as a tree (each step under the steps it needs, nested workflow runs as subtrees)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from herder.cli import render
from herder.model.runs import TERMINAL as RUN_TERMINAL

TERMINAL = frozenset({"SUCCESS", "FAILED", "ABORTED"})
FINAL = frozenset(s.value for s in RUN_TERMINAL)  # a step run's final statuses
ITEMS_SHOWN = 10  # a foreach step's items drawn one per line; past it, only those not SUCCESS


def is_ended(run: Mapping[str, Any]) -> bool:
    return str(run.get("status")) in TERMINAL


def exit_code(run: Mapping[str, Any]) -> int:
    """0 for a workflow run that ended SUCCESS, 1 for anything else."""
    return 0 if run.get("status") == "SUCCESS" else 1


def status(value: Any) -> Text:
    """A status in its colour; a step with no run yet is ``not started``."""
    return render.status_text(value) if value else Text("not started", style="dim")


def duration(run: Mapping[str, Any]) -> str:
    """From its creation to its end (or to now, with an ellipsis)."""
    return render.run_duration({"started_at": run.get("created_at"),
                                "finished_at": run.get("finished_at")})


def run_line(run: Mapping[str, Any]) -> Text:
    """``workflow run 12 data/etl FAILED after 3.20s (rerun of 9)``, then its reason."""
    text = Text.assemble(f"workflow run {render.cell(run.get('id'))} "
                         f"{render.cell(run.get('workflow'))} ", status(run.get("status")))
    took = duration(run)
    if took != "-":
        text.append(f" after {took}" if is_ended(run) else f" for {took}")
    notes = [f"rerun of {run['rerun_of']}"] if run.get("rerun_of") else []
    if run.get("parent_run_id"):
        notes.append(f"step {run.get('parent_step')} of workflow run {run['parent_run_id']}")
    if run.get("paused_at") and run.get("status") == "PAUSED":
        notes.append(f"paused {render.relative(run['paused_at'])}")
    if notes:
        text.append(f" ({'; '.join(notes)})", style="dim")
    if run.get("reason"):
        text.append(f": {run['reason']}", style="red" if run.get("status") == "FAILED" else "")
    return text


def runs_table(runs: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    table.add_column("ID", justify="right", no_wrap=True)
    table.add_column("WORKFLOW", overflow="ellipsis")
    table.add_column("STATUS", no_wrap=True)
    table.add_column("TRIGGER", no_wrap=True)
    table.add_column("CREATED", no_wrap=True)
    table.add_column("DURATION", justify="right", no_wrap=True)
    table.add_column("NOTE", overflow="ellipsis")
    for run in runs:
        notes = [f"rerun of {run['rerun_of']}"] if run.get("rerun_of") else []
        if run.get("parent_run_id"):
            notes.append(f"in workflow run {run['parent_run_id']}")
        if run.get("reason"):
            notes.append(str(run["reason"]))
        table.add_row(
            render.cell(run.get("id")),
            render.cell(run.get("workflow")),
            status(run.get("status")),
            render.cell(run.get("trigger")),
            render.relative(run.get("created_at")),
            duration(run),
            Text("; ".join(notes), style="dim", no_wrap=True, overflow="ellipsis"),
        )
    return table


# -- the tree ------------------------------------------------------------------------------


def run_tree(run_id: int, drawn: Mapping[int, Mapping[str, Any]]) -> Tree:
    """The run ``run_id`` as a tree, its nested runs drawn from ``drawn`` (graphs by run id):
    steps that need nothing at the root, each step under the steps it needs (with the
    condition when it is not success), the ``on_failure`` steps in a branch of their own. A
    step met again is named, not repeated."""
    graph = drawn[run_id]
    tree = Tree(run_line(graph["run"]))
    _fill(tree, graph, drawn, seen={run_id})
    return tree


def _fill(tree: Tree, graph: Mapping[str, Any], drawn: Mapping[int, Mapping[str, Any]],
          seen: set[int]) -> None:
    run_id = graph["run"]["id"]
    nodes = {str(n["id"]): n for n in graph.get("nodes") or [] if isinstance(n, Mapping)}
    below: dict[str, list[tuple[str, str]]] = {name: [] for name in nodes}
    needed: set[str] = set()
    for edge in graph.get("edges") or []:
        source, target = str(edge.get("from")), str(edge.get("to"))
        if source in below and target in nodes:
            below[source].append((target, str(edge.get("on") or "success")))
            needed.add(target)
    shown: set[str] = set()

    def add(parent: Tree, name: str, on: str) -> None:
        label = Text()
        label.append(name, style="bold")
        if on != "success":
            label.append(" (always)" if on == "always" else f" (on {on})", style="yellow")
        if name in shown:
            parent.add(label.append(" …", style="dim"))
            return
        shown.add(name)
        node = nodes[name]
        branch = parent.add(label.append_text(node_text(run_id, node)))
        _items(branch, node)
        child = node.get("child")
        if isinstance(child, int):
            nested = drawn.get(child)
            if nested is None or child in seen:
                branch.add(Text(f"workflow run {child}", style="dim"))
            else:
                _fill(branch.add(run_line(nested["run"])), nested, drawn, seen | {child})
        for after, condition in below[name]:
            add(branch, after, condition)

    for section, parent in (("steps", tree), ("on_failure", None)):
        roots = [name for name, node in nodes.items()
                 if (node.get("section") or "steps") == section and name not in needed]
        if roots and parent is None:
            parent = tree.add(Text("on failure", style="bold"))
        for name in roots:
            add(parent or tree, name, "success")


def latest_runs(node: Mapping[str, Any]) -> dict[int, Mapping[str, Any]]:
    """The newest attempt's run of each item (a plain step has one item)."""
    latest: dict[int, Mapping[str, Any]] = {}
    for run in node.get("runs") or []:
        item = run.get("item") if isinstance(run.get("item"), int) else 0
        if item not in latest or int(run.get("attempt") or 0) >= int(
                latest[item].get("attempt") or 0):
            latest[item] = run
    return latest


def node_text(run_id: Any, node: Mapping[str, Any]) -> Text:
    """After a step's name: status, attempt past the first, its run's id (for ``herder
    logs``), how long it took, what a foreach step's items did, what an approval asks."""
    text = Text("  ").append_text(status(node.get("status")))
    attempt = node.get("attempt")
    if isinstance(attempt, int) and attempt > 1:
        text.append(f"  attempt {attempt}", style="yellow")
    items = node.get("items")
    runs = latest_runs(node)
    if isinstance(items, Mapping):
        counts = ", ".join(f"{count} {name}" for name, count in items.items())
        text.append(f"  items: {counts or 'none'}")
    elif runs:
        text.append(f"  run {max(runs.values(), key=_attempt).get('id')}", style="cyan")
    took = render.run_duration(_times(node, runs))
    if took != "-":
        text.append(f"  {took}", style="dim")
    if node.get("kind") == "workflow" and node.get("child") is None:
        text.append("  workflow", style="dim")
    if node.get("kind") == "approval":
        message = node.get("message")
        text.append(f"  approval{': ' + str(message) if message else ''}")
        if node.get("status") == "ACTION_PENDING":
            text.append(f"  (herder workflow approve {run_id} {node.get('id')})", style="dim")
    return text


def _times(node: Mapping[str, Any], runs: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """The step's start and end; a step whose status is final and whose runs have all
    finished has ended when the last one did, whatever ``finished_at`` says."""
    finished = node.get("finished_at")
    ends = [r.get("finished_at") for r in runs.values()]
    if not finished and runs and str(node.get("status")) in FINAL and all(ends):
        finished = max(str(end) for end in ends)
    return {"started_at": node.get("started_at"), "finished_at": finished}


def _attempt(run: Mapping[str, Any]) -> int:
    return int(run.get("attempt") or 0)


def _items(branch: Tree, node: Mapping[str, Any]) -> None:
    """A foreach step's items, one line each (past ITEMS_SHOWN, those that did not succeed)."""
    if not isinstance(node.get("items"), Mapping):
        return
    runs = latest_runs(node)
    shown = sorted(runs.items())
    if len(shown) > ITEMS_SHOWN:
        shown = [(i, r) for i, r in shown if r.get("status") != "SUCCESS"][:ITEMS_SHOWN]
    for item, run in shown:
        line = Text(f"item {item}  ", style="dim").append_text(status(run.get("status")))
        if _attempt(run) > 1:
            line.append(f"  attempt {_attempt(run)}", style="yellow")
        line.append(f"  run {run.get('id')}", style="cyan")
        branch.add(line)
    if len(shown) < len(runs):
        branch.add(Text(f"… {len(runs) - len(shown)} more items", style="dim"))
