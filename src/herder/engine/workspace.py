"""A run's working folder, filled before its process starts: its bundle unpacked at the root,
its input files under ``inputs/``.

Both come from the store (any server may dispatch the run). The folder is built beside its
final place and renamed into it only once complete, so a run never starts in a half-unpacked
folder; a folder left by an attempt that never started (the server died between the claim and
the start) is replaced. Runs with neither a bundle nor input files cost nothing here.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
from collections import OrderedDict
from pathlib import Path

from herder.bundles.archive import Limits, extract
from herder.model import inputs
from herder.model.errors import InvalidSpec, NotFound
from herder.model.jobs import JobSpec, script_argv
from herder.model.runs import Run
from herder.store import bundles as bundle_store
from herder.store import run_files as file_store
from herder.store.database import Database

CACHE_BYTES = 256 * 1024 * 1024  # bundle bytes kept in memory, newest used first


class Workspace:
    """Stages runs' working folders from the store.

    A bundle's bytes never change (its id is their hash), so the bytes of recently used
    bundles are kept in memory up to ``CACHE_BYTES``: runs of one bundle read them from the
    store once. They are checked again at every unpacking all the same."""

    def __init__(self, db: Database, *, limits: Limits) -> None:
        self.db = db
        self.limits = limits
        self._cache: OrderedDict[str, bytes] = OrderedDict()

    async def _bundle(self, bundle_id: str) -> tuple[bundle_store.Bundle, bytes]:
        cached = self._cache.get(bundle_id)
        if cached is not None:
            self._cache.move_to_end(bundle_id)
            return await self.db.read(bundle_store.get, bundle_id), cached
        bundle, data = await self.db.read(bundle_store.data, bundle_id)
        self._cache[bundle_id] = data
        while sum(map(len, self._cache.values())) > CACHE_BYTES and len(self._cache) > 1:
            self._cache.popitem(last=False)
        return bundle, data

    async def stage(
        self, run: Run, spec: JobSpec, work_dir: Path, *, has_files: bool
    ) -> list[str] | None:
        """Unpack the run's bundle (if ``spec``, its frozen job spec, has a script) and write
        its input files (if it has any); answers the argv that starts the bundle's entry point
        (None: no script). Raises ``InvalidSpec`` (the run then ends PROC_ERROR with the
        message)."""
        if spec.script is None and not has_files:
            return None  # the common case costs nothing
        bundle, argv = None, None
        if spec.script is not None:
            try:
                bundle = await self._bundle(spec.script.bundle)
            except NotFound:
                raise InvalidSpec(
                    f"script.bundle: bundle {spec.script.bundle} no longer exists"
                ) from None
            argv = script_argv(bundle_store.entrypoint(bundle[0], spec.script))
        files = await self.db.read(file_store.load, run.id) if has_files else []
        await asyncio.to_thread(self._build, work_dir, bundle, files)
        return argv

    def _build(
        self, work_dir: Path, bundle: tuple[bundle_store.Bundle, bytes] | None,
        files: list[tuple[str, bytes]],
    ) -> None:
        work_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        staging = work_dir.with_name(f".{work_dir.name}.staging-{secrets.token_hex(4)}")
        try:
            if bundle is not None:
                extract(bundle[1], staging, bundle[0].files, self.limits)
            else:
                os.mkdir(staging, 0o700)
            if files:
                folder = staging / inputs.FOLDER
                os.mkdir(folder, 0o700)
                for name, data in files:
                    fd = os.open(folder / inputs.check_name(name),
                                 os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        out.write(data)
            if os.path.lexists(work_dir):  # an attempt that never started left it
                shutil.rmtree(work_dir)
            os.rename(staging, work_dir)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
