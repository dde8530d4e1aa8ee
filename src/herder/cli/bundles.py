"""``herder bundle upload|list|show|delete``, and ``BUNDLE[:ENTRYPOINT]`` references.

A folder given to ``upload`` is zipped here (its files at the root of the archive, exec bits
kept); a file is sent as it is, and the server tells a zip from a tar.gz by its content.
"""

from __future__ import annotations

import io
import os
import re
import stat
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from herder.cli import render
from herder.cli.client import API, Client, CliError
from herder.cli.common import OutputOpt, ServerOpt, connect, output_of
from herder.cli.render import Output, cell, relative

app = typer.Typer(help="Upload and inspect script bundles (a job runs one with --script).",
                  no_args_is_help=True)
FULL_ID = re.compile(r"[0-9a-f]{64}")
SHORT = 12  # hex digits of an id shown in tables; any unique prefix is accepted back


@app.command("upload")
def upload(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="PATH", help="a folder, a .zip or a .tar.gz")],
    entrypoint: Annotated[
        str | None,
        typer.Option("--entrypoint", "-e", help="the file runs start (default script.sh)"),
    ] = None,
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """Upload a bundle; print its id. The same bytes again answer the bundle already kept."""
    with _archive(path) as (name, content), connect(ctx, server) as api:
        bundle, created = api.upload_bundle(name, content, entrypoint=entrypoint)
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(bundle, fmt)
        return
    typer.echo(bundle["id"])
    verb = "uploaded" if created else "already kept"
    render.hint(f"{verb}: {len(bundle.get('files', []))} files, entry point "
                f"{bundle.get('entrypoint')}; run it with "
                f"`herder job create NAME --script {bundle['id'][:SHORT]}`")


@app.command("list")
def list_bundles(ctx: typer.Context, server: ServerOpt = None, output: OutputOpt = None) -> None:
    """The bundles kept on the server."""
    with connect(ctx, server) as api:
        page = api.pages(f"{API}/bundles", {}, all_pages=True)
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(page, fmt)
        return
    render.out().print(bundles_table(page["items"]))


@app.command("show")
def show(
    ctx: typer.Context,
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE", help="its id, or a unique prefix")],
    server: ServerOpt = None,
    output: OutputOpt = None,
) -> None:
    """A bundle's entry point and files."""
    with connect(ctx, server) as api:
        found = api.get_bundle(resolve(api, bundle))
    fmt = output_of(ctx, output)
    if fmt is not Output.TABLE:
        render.emit(found, fmt)
        return
    files = Table(box=None, header_style="bold", pad_edge=False)
    files.add_column("FILE", overflow="fold")
    files.add_column("SIZE", justify="right")
    files.add_column("EXEC")
    for f in found.get("files", []):
        files.add_row(str(f.get("name")), cell(f.get("size")), "x" if f.get("executable") else "")
    info = Text.assemble(
        (found["id"], "bold"), ("\nkind ", "dim"), cell(found.get("kind")),
        ("  entry point ", "dim"), cell(found.get("entrypoint")), ("  size ", "dim"),
        cell(found.get("size")), ("  unpacked ", "dim"), cell(found.get("unpacked_size")),
        ("  uploaded ", "dim"), relative(found.get("created_at")), "\n",
    )
    render.out().print(Group(info, files))


@app.command("delete")
def delete(
    ctx: typer.Context,
    bundle: Annotated[str, typer.Argument(metavar="BUNDLE", help="its id, or a unique prefix")],
    server: ServerOpt = None,
) -> None:
    """Delete a bundle; refused while a job names it or an active run uses it."""
    with connect(ctx, server) as api:
        bundle_id = resolve(api, bundle)
        api.request("DELETE", f"{API}/bundles/{bundle_id}")
    render.hint(f"deleted bundle {bundle_id}")


def bundles_table(bundles: Iterable[Mapping[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name, justify in (("ID", "left"), ("ENTRY POINT", "left"), ("KIND", "left"),
                          ("FILES", "right"), ("SIZE", "right"), ("UPLOADED", "left")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for b in bundles:
        table.add_row(str(b.get("id", ""))[:SHORT], cell(b.get("entrypoint")), cell(b.get("kind")),
                      str(len(b.get("files", []))), cell(b.get("size")),
                      relative(b.get("created_at")))
    return table


def resolve(api: Client, text: str) -> str:
    """A bundle id from its full form or a unique prefix of it (as tables show)."""
    wanted = text.strip().lower()
    if FULL_ID.fullmatch(wanted):
        return wanted
    if not re.fullmatch(r"[0-9a-f]{4,63}", wanted):
        raise CliError(f"{text[:80]!r} is not a bundle id (hex digits, at least 4; see "
                       "`herder bundle list`)", exit_code=2)
    # Ids sort after any prefix of theirs: the first two after ``wanted`` tell if it is unique.
    page = api.pages(f"{API}/bundles", {"cursor": wanted, "limit": 2}, all_pages=False)
    ids = [b["id"] for b in page["items"] if str(b.get("id", "")).startswith(wanted)]
    if len(ids) != 1:
        found = "no bundle" if not ids else "more than one bundle"
        raise CliError(f"{found} with an id starting {wanted!r}; see `herder bundle list`")
    return str(ids[0])


def script_of(api: Client, text: str) -> dict[str, Any]:
    """``BUNDLE[:ENTRYPOINT]`` as a job's ``script``."""
    bundle, _, entrypoint = text.partition(":")
    return {"bundle": resolve(api, bundle), "entrypoint": entrypoint or None}


class _archive:
    """The bytes to send for PATH: a folder zipped in memory, or the file itself."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: IO[bytes] | None = None

    def __enter__(self) -> tuple[str, IO[bytes]]:
        path = self.path
        try:
            if path.is_dir():
                self._open = zip_folder(path)
                return f"{path.resolve().name or 'bundle'}.zip", self._open
            self._open = path.open("rb")
        except OSError as exc:
            raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
        return path.name, self._open

    def __exit__(self, *exc: object) -> None:
        if self._open is not None:
            self._open.close()


def zip_folder(folder: Path) -> IO[bytes]:
    """The folder's files as a zip, paths relative to it; links are refused, as the server
    refuses them in a bundle."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for root, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                full = os.path.join(root, name)
                relative_name = os.path.relpath(full, folder)
                found = os.lstat(full)
                if not stat.S_ISREG(found.st_mode):
                    raise CliError(f"{full} is not a regular file (a link, a FIFO…); a bundle "
                                   "holds files and folders only", exit_code=2)
                info = zipfile.ZipInfo.from_file(full, relative_name)
                info.compress_type = zipfile.ZIP_DEFLATED
                with open(full, "rb") as source:
                    archive.writestr(info, source.read())
    buffer.seek(0)
    return buffer
