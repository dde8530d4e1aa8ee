"""``herder apply``, ``diff`` and ``export``: objects kept as manifests, in git.

``apply`` and ``diff`` read every file first (``manifests.read_manifests``): one bad document
and nothing is sent. Then each object is compared with what the server has, in the form the
server stores (``manifests.normalize_job``): only what differs is sent, so applying twice
changes nothing the second time. ``export`` writes the server's objects in the same layout, and
applying an export reports every object unchanged.
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from herder.cli import render
from herder.cli.client import API, Client, CliError, object_path
from herder.cli.common import ServerOpt, connect, output_of, pairs
from herder.cli.manifests import (
    API_VERSION,
    METADATA_KEYS,
    STDIN,
    Manifest,
    ManifestError,
    normalize,
    normalize_job,
    read_manifests,
)
from herder.cli.render import Output
from herder.model.durations import format_duration, parse_duration
from herder.model.errors import InvalidSpec
from herder.model.jobs import NAME_RE
from herder.model.workflows import refers_to

FilesOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--filename",
        "-f",
        metavar="FILE|DIR|-",
        help="a manifest file, a folder of them (.yaml, .yml, .json, read recursively), or - "
        "for stdin (repeatable)",
        show_default=False,
    ),
]
_INFO = ("id", "ref", "created_at", "updated_at", "run_count", "next_run_at")
_REQUIRED = ("command", "steps")
# The order of a job's spec in an exported manifest, as the design writes it.
SPEC_ORDER = (
    "description", "command", "script", "params", "env", "backend", "schedule", "enabled",
    "timeout", "retries", "concurrency", "max_active", "misfire", "locks", "after", "metadata",
)
WORKFLOW_SPEC_ORDER = (
    "description", "params", "schedule", "enabled", "timeout", "parallelism", "concurrency",
    "max_active", "misfire", "retention", "steps", "on_failure",
)
_VERB_STYLES = {"created": "green", "updated": "yellow", "unchanged": "dim"}
_DIFF_STYLES = {"+": "green", "-": "red", "@": "cyan"}


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.command("diff")(diff)
    app.command("export")(export)


@dataclass(frozen=True, slots=True)
class Change:
    """One manifest beside what the server has for it now (``None``: nothing yet), both in the
    normalized form, over the same fields."""

    manifest: Manifest
    live: dict[str, Any] | None

    @property
    def action(self) -> str:
        if self.live is None:
            return "create"
        return "unchanged" if self.live == self.manifest.spec else "update"


def plan(api: Client, manifests: list[Manifest]) -> list[Change]:
    """Read what the server has for each manifest; nothing is changed. Jobs come first, then
    workflows, each after the workflows it runs: what a workflow refers to exists when it is
    sent."""
    changes = []
    for manifest in in_order(manifests):
        if manifest.kind == "Namespace":
            changes.append(Change(manifest, _live_namespace(api, manifest)))
            continue
        found = api.find(manifest.kind.lower(), manifest.ref)
        changes.append(Change(manifest, None if found is None else _fields(found, manifest)))
    return changes


def in_order(manifests: list[Manifest]) -> list[Manifest]:
    """Jobs in file order, each after the jobs it follows (``after``), then workflows, a
    nested one before those that run it."""
    workflows = {m.ref: m for m in manifests if m.kind == "Workflow"}
    ordered = _jobs_in_order([m for m in manifests if m.kind != "Workflow"])
    placed: set[str] = set()

    def place(manifest: Manifest, trail: tuple[str, ...]) -> None:
        if manifest.ref in placed or manifest.ref in trail:
            return  # a loop: the server refuses it with its path
        for step in (*manifest.spec["steps"], *manifest.spec["on_failure"]):
            nested = step.get("workflow")
            if isinstance(nested, str):
                ref = "/".join(refers_to(nested, manifest.namespace))
                if ref in workflows:
                    place(workflows[ref], (*trail, manifest.ref))
        placed.add(manifest.ref)
        ordered.append(manifest)

    for manifest in workflows.values():
        place(manifest, ())
    return ordered


def _jobs_in_order(manifests: list[Manifest]) -> list[Manifest]:
    """Namespaces and jobs in file order, a job after the jobs of these files it follows."""
    jobs = {m.ref: m for m in manifests if m.kind == "Job"}
    ordered = [m for m in manifests if m.kind != "Job"]
    placed: set[str] = set()

    def place(manifest: Manifest, trail: tuple[str, ...]) -> None:
        if manifest.ref in placed or manifest.ref in trail:
            return  # a cycle: the server refuses it with its path
        for follow in manifest.spec.get("after") or ():
            space, _, name = str(follow.get("job", "")).rpartition("/")
            ref = f"{space or manifest.namespace}/{name}"
            if ref in jobs:
                place(jobs[ref], (*trail, manifest.ref))
        placed.add(manifest.ref)
        ordered.append(manifest)

    for manifest in jobs.values():
        place(manifest, ())
    return ordered


def _live_namespace(api: Client, manifest: Manifest) -> dict[str, Any] | None:
    found = api.find("namespace", manifest.name)
    return None if found is None else _fields(found, manifest)


def _fields(job: Mapping[str, Any], manifest: Manifest) -> dict[str, Any]:
    """The server's job over the fields a manifest sets (what it adds besides is not ours)."""
    return {k: job[k] for k in manifest.spec if k in job}


def apply_change(api: Client, change: Change) -> str:
    """Make the server match one manifest: ``created``, ``updated`` or ``unchanged``.

    A manifest that differs is sent; the server's answer decides whether it was really a
    change (should this CLI normalize a field differently from the server, nothing is claimed
    that did not happen).
    """
    if change.action == "unchanged":
        return "unchanged"
    if change.manifest.kind == "Namespace":
        if change.live is None:
            api.post(f"{API}/namespaces", change.manifest.body)
            return "created"
        api.send("PATCH", object_path("namespace", change.manifest.name),
                 json={"retention": change.manifest.spec.get("retention")})
        return "updated"
    answer, created = api.put(change.manifest.kind.lower(), change.manifest.ref,
                              change.manifest.body)
    if created or change.live is None:
        return "created"
    return "unchanged" if _fields(answer, change.manifest) == change.live else "updated"


def _read(files: list[str] | None, what: str) -> list[Manifest]:
    if not files:
        raise typer.BadParameter("give at least one -f FILE|DIR|-", param_hint="-f")
    if files.count(STDIN) > 1:
        raise typer.BadParameter("stdin (-) can be read once", param_hint="-f")
    try:
        return read_manifests(files)
    except ManifestError as exc:
        raise CliError(f"{exc.message}\n{what}", exit_code=2) from None


def apply(
    ctx: typer.Context,
    files: FilesOpt = None,
    server: ServerOpt = None,
    output: Annotated[
        Output | None,
        typer.Option(
            "--output", "-o", case_sensitive=False, show_default=False,
            help="table for people; json or yaml list each object and what became of it",
        ),
    ] = None,
) -> None:
    """Create or update the objects in manifests; print created, updated or unchanged for each.

    Every file is read and checked first: one bad document and nothing is applied.

    Objects that match the server already are not sent. Applying never deletes anything.

    Exit 0: all applied. 1: the server refused one; those before it were applied.

    Exit 2: bad manifests or options; nothing was applied.
    """
    fmt = output_of(ctx, output)
    manifests = _read(files, "nothing was applied")
    done: list[dict[str, Any]] = []
    with connect(ctx, server) as api:
        changes = plan(api, manifests)
        for change in changes:
            m = change.manifest
            try:
                result = apply_change(api, change)
            except CliError as exc:
                if fmt is not Output.TABLE:
                    render.emit({"items": done}, fmt)
                raise CliError(
                    f"{m.source}: {m.kind.lower()} {m.ref}: {exc.message}\n"
                    f"{len(done)} of {len(changes)} applied before it; the rest were not tried"
                ) from None
            done.append({"kind": m.kind, "namespace": m.namespace, "name": m.name,
                         "result": result, "source": str(m.source)})
            if fmt is Output.TABLE:
                render.out().print(
                    Text.assemble(f"{m.kind.lower()} {m.ref} ", (result, _VERB_STYLES[result])),
                    soft_wrap=True,
                )
    if fmt is not Output.TABLE:
        render.emit({"items": done}, fmt)
    counts = {v: sum(1 for d in done if d["result"] == v) for v in _VERB_STYLES}
    render.hint(", ".join(f"{n} {verb}" for verb, n in counts.items()))


def diff(
    ctx: typer.Context,
    files: FilesOpt = None,
    server: ServerOpt = None,
) -> None:
    """Show what `herder apply` would change, as a unified diff of YAML per object.

    Nothing is changed. The server's side is ---, the manifests' +++, both as the server stores.

    Exit 0: nothing would change. 1: something would. 2: trouble (as with diff(1)).
    """
    try:
        manifests = _read(files, "nothing was compared")
        with connect(ctx, server) as api:
            changes = plan(api, manifests)
    except CliError as exc:
        raise CliError(exc.message, exit_code=max(exc.exit_code, 2)) from None
    console = render.out()
    for change in changes:
        for line in diff_lines(change):
            if console.is_terminal:
                console.print(Text(line, style=_diff_style(line)), soft_wrap=True)
            else:
                sys.stdout.write(line + "\n")
    sys.stdout.flush()
    counts = {"create": 0, "update": 0, "unchanged": 0}
    for change in changes:
        counts[change.action] += 1
    render.hint(
        f"{counts['create']} to create, {counts['update']} to update, "
        f"{counts['unchanged']} unchanged"
    )
    if counts["create"] or counts["update"]:
        raise typer.Exit(1)


def _diff_style(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "bold"
    return _DIFF_STYLES.get(line[:1], "")


def _document(spec: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """An object as its manifest: a Namespace's holds its name and, if set, its retention."""
    if kind != "Namespace":
        return to_manifest(spec, kind=kind)
    document: dict[str, Any] = {"apiVersion": API_VERSION, "kind": "Namespace",
                                "metadata": {"name": spec["name"]}}
    if spec.get("retention") is not None:
        document["spec"] = {"retention": spec["retention"]}
    return document


def diff_lines(change: Change) -> list[str]:
    """The unified diff of one object (no lines when nothing would change)."""
    if change.action == "unchanged":
        return []
    m = change.manifest
    ident = f"{m.kind.lower()} {m.ref}"
    after = render.dump(_document(m.spec, m.kind), Output.YAML).splitlines()
    if change.live is None:
        before: list[str] = []
        left = "/dev/null"
    else:
        live = _document({**m.spec, **change.live}, m.kind)
        before = render.dump(live, Output.YAML).splitlines()
        left = f"server: {ident}"
    return list(
        difflib.unified_diff(before, after, fromfile=left, tofile=f"{m.source}: {ident}",
                             lineterm="")
    )


# -- export -----------------------------------------------------------------------------------


def export(
    ctx: typer.Context,
    namespace: Annotated[
        str | None,
        typer.Option("--namespace", "-n", help="only this namespace (default: all)"),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            "--label", "-l", metavar="K=V", help="only objects with this label (repeatable)"
        ),
    ] = None,
    to: Annotated[
        str,
        typer.Option(
            "--out", "-o", metavar="DIR|-",
            help="a folder to write <namespace>/<kind>-<name>.yaml files in, or - for one YAML "
            "stream on stdout",
        ),
    ] = STDIN,
    server: ServerOpt = None,
) -> None:
    """Write the server's objects as manifests, which `herder apply -f` restores exactly.

    Fields at their default are left out.

    Into a folder: one file per object; other files there are left alone.
    """
    if to != STDIN and to.lower() in set(Output) and not Path(to).exists():
        raise typer.BadParameter(
            f"export always writes YAML manifests; -o names a folder (or - for stdout). For a "
            f"folder called {to!r}, give ./{to}",
            param_hint="-o",
        )
    labels = [f"{k}={v}" for k, v in pairs(label, "--label").items()]
    query = {"namespace": namespace, "label": labels, "limit": 500}
    with connect(ctx, server) as api:
        jobs = api.list_jobs(query, all_pages=True)["items"]
        workflows = api.list_workflows(query, all_pages=True)["items"]
    manifests = [to_manifest(job) for job in _by_name(jobs)]
    manifests += [to_manifest(w, kind="Workflow") for w in _by_name(workflows)]
    if not manifests:
        render.hint("no jobs or workflows found")
    if to == STDIN:
        sys.stdout.writelines(documents(manifests))
        sys.stdout.flush()
        return
    written = write_tree(Path(to), manifests)
    render.hint(f"wrote {len(written)} manifest{'s' * (len(written) != 1)} under {to}")


def _by_name(objects: list[Any]) -> list[dict[str, Any]]:
    return sorted(objects, key=lambda o: (str(o.get("namespace")), str(o.get("name"))))


def write_tree(folder: Path, manifests: list[dict[str, Any]]) -> list[Path]:
    """One file per object, ``<folder>/<namespace>/<kind>-<name>.yaml``, each replaced whole
    (a symlink in its place is replaced, never written through)."""
    written = []
    for manifest in manifests:
        meta = manifest["metadata"]
        parts = (str(meta.get("namespace")), str(meta.get("name")))
        if not all(NAME_RE.fullmatch(p) for p in parts):
            raise CliError(f"the server answered an object named {'/'.join(parts)[:120]!r}, "
                           "which is not a safe file name; nothing more was written")
        sub = folder / parts[0]
        if sub.is_symlink():
            raise CliError(f"{sub} is a symlink; export does not write through it")
        try:
            sub.mkdir(parents=True, exist_ok=True)
            target = sub / f"{manifest['kind'].lower()}-{parts[1]}.yaml"
            temporary = sub / f".{target.name}.{os.getpid()}.tmp"
            temporary.write_text(render.dump(manifest, Output.YAML), encoding="utf-8")
            os.replace(temporary, target)
        except OSError as exc:
            raise CliError(f"cannot write under {folder}: {exc.strerror or exc}") from None
        written.append(target)
    return written


def to_manifest(job: Mapping[str, Any], *, kind: str = "Job") -> dict[str, Any]:
    """A job's or workflow's JSON form (the API's, or a normalized manifest) as a manifest:
    metadata apart, the bookkeeping (id, run_count…) dropped, fields at their default left
    out."""
    metadata: dict[str, Any] = {"name": job.get("name"), "namespace": job.get("namespace")}
    metadata.update((k, dict(job[k])) for k in ("labels", "annotations") if job.get(k))
    defaults = job_defaults() if kind == "Job" else workflow_defaults()
    order = SPEC_ORDER if kind == "Job" else WORKFLOW_SPEC_ORDER
    extra = sorted(k for k in job if k not in (*order, *_INFO, *METADATA_KEYS))
    spec: dict[str, Any] = {}
    for key in (*(k for k in order if k in job), *extra):
        value = job[key]
        if key in defaults and key not in _REQUIRED and value == defaults[key]:
            continue
        if key == "command" and value is None:  # a script job
            continue
        if key not in defaults and value is None:
            continue
        spec[key] = _duration(value) if key == "timeout" else value
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


@cache
def job_defaults() -> dict[str, Any]:
    """The normalized value of every field a manifest may leave out."""
    return normalize_job({"name": "x", "command": "x"})


@cache
def workflow_defaults() -> dict[str, Any]:
    """The same for a workflow."""
    return normalize("Workflow", {"name": "x", "steps": [{"name": "x", "command": "x"}]})


def _duration(value: Any) -> Any:
    """Seconds as ``1h30m`` where that reads back to exactly the same number."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        text = format_duration(float(value))
        try:
            if parse_duration(text) == value:
                return text
        except InvalidSpec:
            pass
    return value


def documents(manifests: list[dict[str, Any]]) -> Iterator[str]:
    """Each manifest as one YAML document of a stream, ``---`` first."""
    for manifest in manifests:
        yield "---\n" + render.dump(manifest, Output.YAML)
