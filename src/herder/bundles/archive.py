"""Reading a bundle archive without trusting it: ``inspect`` before it is kept, ``extract``
each time a run unpacks it.

The kind is told by content (a zip's ``PK`` signature, gzip's ``1f 8b``), never by file name.
Both functions walk the archive with the same checks (``_entries``): every member name must be
a plain relative path (no absolute path, no ``..``, no backslash, no NUL, no duplicate), every
member a regular file or a folder (symbolic links, device files and FIFOs are refused; a hard
link is accepted only to an earlier file of the archive, and unpacked as a copy), and the
entries, the bytes they really expand to (counted while reading, whatever the headers declare)
and the ratio of those bytes to the archive's size stay under the limits. ``extract`` also
refuses an archive whose members are not the ones ``inspect`` listed, and writes only inside a
folder it creates, with files opened ``O_EXCL | O_NOFOLLOW``: an archive is never trusted twice.
Blocking I/O: call these on a thread.
"""

from __future__ import annotations

import functools
import gzip
import io
import os
import stat
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from herder.engine import outputs
from herder.model import inputs
from herder.model.errors import InvalidSpec

CHUNK = 64 * 1024
MAX_NAME = 255  # bytes of one member path, as a folder name limit keeps it sane
# Ratio checks start above this size: a tiny file of zeros is no bomb.
RATIO_FLOOR = 1024 * 1024
# Names a run's working folder keeps for herder (input files, outputs): no bundle may hold them.
RESERVED = frozenset({inputs.FOLDER, outputs.FILE_NAME})


_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError, ValueError, zlib.error)
_EOCD = struct.Struct("<4s4H2LH")  # a zip's end of central directory record


class BadArchive(InvalidSpec):
    """A bundle archive refused: what is wrong with it is in the message; nothing was kept."""

    code = "bad_archive"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one bundle may hold."""

    max_entries: int = 10_000
    max_unpacked: int = 512 * 1024 * 1024
    max_ratio: int = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class Member:
    """A file of a bundle (folders are implied by the paths)."""

    name: str
    size: int
    executable: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "size": self.size, "executable": self.executable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Member:
        return cls(name=data["name"], size=data["size"], executable=data["executable"])


@dataclass(frozen=True, slots=True, kw_only=True)
class Inspected:
    """What ``inspect`` found: the archive's kind and its files, in archive order."""

    kind: str  # "zip" or "tar.gz"
    files: tuple[Member, ...]

    @property
    def unpacked(self) -> int:
        return sum(f.size for f in self.files)


def kind_of(head: bytes) -> str:
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "tar.gz"
    raise BadArchive("bundle: not a zip or a gzip-compressed tar archive (told by its content)")


def check_name(raw: str) -> str:
    """A member path as it will be written: relative, inside the root, normalized."""
    if "\x00" in raw or "\\" in raw:
        raise BadArchive(f"bundle: member {raw[:100]!r}: NUL and backslash are not allowed")
    if raw.startswith("/") or (len(raw) > 1 and raw[1] == ":"):
        raise BadArchive(f"bundle: member {raw[:100]!r} has an absolute path")
    parts = [p for p in raw.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BadArchive(f"bundle: member {raw[:100]!r} points outside the bundle ('..')")
    name = "/".join(parts)
    if len(name.encode()) > MAX_NAME:
        raise BadArchive(f"bundle: member {raw[:100]!r}...: path longer than {MAX_NAME} bytes")
    if parts and parts[0] in RESERVED:
        raise BadArchive(
            f"bundle: member {raw[:100]!r}: the top-level name {parts[0]!r} is kept for herder "
            "(input files, outputs)"
        )
    return name


# One entry of an archive: its checked name, "file" or "dir", exec bit, declared size, and a
# function that opens its bytes (None for a folder); or a hard link's target name.
@dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    is_dir: bool
    executable: bool
    declared: int
    open: Callable[[], IO[bytes]] | None
    link_to: str | None = None


def _zip_entry_count(data: bytes) -> int:
    """How many entries a zip declares, read from its end record before ``zipfile`` builds an
    object per entry (a small zip of empty entries could otherwise cost gigabytes)."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - _EOCD.size - 65535))
    if at < 0 or len(data) - at < _EOCD.size:
        raise BadArchive("bundle: a corrupt zip archive (no end of central directory)")
    total = _EOCD.unpack_from(data, at)[4]
    return 1 << 32 if total == 0xFFFF else int(total)  # 0xFFFF: a zip64 count, "very many"


def _zip_entries(data: IO[bytes]) -> Iterator[_Entry]:
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadArchive(f"bundle: a corrupt zip archive ({exc})") from None
    with archive:
        for info in archive.infolist():
            name = check_name(info.filename)
            mode = info.external_attr >> 16
            kind = stat.S_IFMT(mode)
            if kind == stat.S_IFLNK:
                raise BadArchive(f"bundle: member {name!r} is a symbolic link; links are not "
                                 "allowed in a bundle")
            if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                raise BadArchive(f"bundle: member {name!r} is a device file or FIFO")
            if info.flag_bits & 0x1:
                raise BadArchive(f"bundle: member {name!r} is encrypted")
            if info.is_dir() or kind == stat.S_IFDIR:
                yield _Entry(name, True, False, 0, None)
                continue
            yield _Entry(name, False, bool(mode & 0o111), info.file_size,
                         functools.partial(_opened, archive.open, info, name))


def _tar_entries(data: IO[bytes]) -> Iterator[_Entry]:
    # ``data`` is already decompressed (and counted, see ``_Counted``): read as a plain stream.
    try:
        archive = tarfile.open(fileobj=data, mode="r|")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BadArchive(f"bundle: a corrupt tar.gz archive ({exc})") from None
    with archive:
        for info in archive:
            name = check_name(info.name)
            if info.issym():
                raise BadArchive(f"bundle: member {name!r} is a symbolic link (to "
                                 f"{info.linkname[:100]!r}); links are not allowed in a bundle")
            if info.islnk():
                yield _Entry(name, False, False, 0, None, link_to=_link_target(name, info))
            elif info.isdir():
                yield _Entry(name, True, False, 0, None)
            elif info.isreg():
                yield _Entry(name, False, bool(info.mode & 0o111), info.size,
                             functools.partial(_opened, _member_bytes, archive, info, name))
            else:
                raise BadArchive(f"bundle: member {name!r} is a device file, a FIFO or another "
                                 "special file")


def _opened(open_: Callable[..., IO[bytes]], *args: Any) -> IO[bytes]:
    """Open a member's bytes (the last argument names it); what goes wrong is a corrupt member
    (zipfile checks names, overlaps and encryption only here)."""
    try:
        return open_(*args[:-1])
    except _CORRUPT as exc:
        raise BadArchive(f"bundle: member {args[-1]!r} is corrupt ({exc})") from None


def _member_bytes(archive: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    extracted = archive.extractfile(info)
    assert extracted is not None  # a regular file always has bytes
    return extracted


def _link_target(name: str, info: tarfile.TarInfo) -> str:
    try:
        return check_name(info.linkname)
    except BadArchive:
        raise BadArchive(f"bundle: member {name!r} is a hard link to "
                         f"{info.linkname[:100]!r}, outside the bundle") from None


class _Counted(io.RawIOBase):
    """Counts what gzip really expands to, tar headers and padding included (a huge pax
    header is no member, yet costs memory): the same limits as members' bytes apply."""

    def __init__(self, inner: gzip.GzipFile, budget: int, limits: Limits, compressed: int) -> None:
        self.inner, self.budget, self.seen = inner, budget, 0
        self.limits, self.compressed = limits, compressed

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.inner.read(len(buffer))
        self.seen += len(data)
        if self.seen > self.budget:
            raise BadArchive("bundle: expands to more than the size limit (a compression bomb?)")
        _check_ratio(self.seen, self.limits, self.compressed)
        buffer[: len(data)] = data
        return len(data)


def _entries(data: bytes, limits: Limits) -> Iterator[_Entry]:
    """Every file and hard-link entry, checked in place and counted; folders are checked and
    left out (they are implied by the paths)."""
    kind = kind_of(data[:4])
    if kind == "zip":
        if _zip_entry_count(data) > limits.max_entries:
            raise BadArchive(f"bundle: more than {limits.max_entries} entries")
        raw: Iterator[_Entry] = _zip_entries(io.BytesIO(data))
    else:
        budget = limits.max_unpacked + (limits.max_entries + 2) * 1024  # headers and padding
        unzipped = gzip.GzipFile(fileobj=io.BytesIO(data))
        stream = io.BufferedReader(_Counted(unzipped, budget, limits, len(data)))
        raw = _tar_entries(stream)
    seen: dict[str, bool] = {}  # name -> is a folder
    count = 0
    try:
        for entry in raw:
            count += 1
            if count > limits.max_entries:
                raise BadArchive(f"bundle: more than {limits.max_entries} entries")
            _check_place(entry, seen)
            if entry.link_to is not None and seen.get(entry.link_to) is not False:
                raise BadArchive(f"bundle: member {entry.name!r} is a hard link to "
                                 f"{entry.link_to!r}, which is not an earlier file of it")
            if not entry.is_dir:
                yield entry
    except _CORRUPT as exc:
        raise BadArchive(f"bundle: a corrupt {kind} archive ({exc})") from None


def _check_place(entry: _Entry, seen: dict[str, bool]) -> None:
    if entry.name == "":
        if entry.is_dir:
            return
        raise BadArchive("bundle: a member without a name")
    if entry.name in seen:
        if entry.is_dir and seen[entry.name]:
            return  # the same folder twice is harmless
        raise BadArchive(f"bundle: member {entry.name!r} appears twice")
    parts = entry.name.split("/")
    for i in range(1, len(parts)):
        parent = "/".join(parts[:i])
        if seen.get(parent) is False:
            raise BadArchive(f"bundle: member {entry.name!r} is under {parent!r}, a file")
        seen.setdefault(parent, True)
    if not entry.is_dir and any(other.startswith(entry.name + "/") for other in seen):
        raise BadArchive(f"bundle: member {entry.name!r} is also a folder")
    seen[entry.name] = entry.is_dir


def _count(total: list[int], more: int, limits: Limits, compressed: int) -> None:
    total[0] += more
    if total[0] > limits.max_unpacked:
        raise BadArchive(f"bundle: unpacks to more than {limits.max_unpacked} bytes (the limit)")
    _check_ratio(total[0], limits, compressed)


def _check_ratio(expanded: int, limits: Limits, compressed: int) -> None:
    if expanded > RATIO_FLOOR and expanded > limits.max_ratio * compressed:
        raise BadArchive(
            f"bundle: expands to more than {limits.max_ratio} times its own size (a "
            "compression bomb?)"
        )


def _read(source: IO[bytes], name: str) -> bytes:
    try:
        return source.read(CHUNK)
    except _CORRUPT as exc:
        raise BadArchive(f"bundle: member {name!r} is corrupt ({exc})") from None


def _copy(
    source: IO[bytes], sink: Callable[[bytes], object] | None, *, name: str, declared: int,
    total: list[int], limits: Limits, compressed: int,
) -> int:
    """Copy one member's bytes (real bytes, whatever its header says), counting them against
    every limit as they come."""
    size = 0
    while chunk := _read(source, name):
        size += len(chunk)
        _count(total, len(chunk), limits, compressed)
        if size > declared:
            raise BadArchive(f"bundle: member {name!r} holds more bytes than its header says")
        if sink is not None:
            sink(chunk)
    if size != declared:
        raise BadArchive(f"bundle: member {name!r} holds fewer bytes than its header says")
    return size


def inspect(data: bytes, limits: Limits) -> Inspected:
    """Read the whole archive once, checking everything; answers its files. ``BadArchive``
    says what is wrong."""
    files: dict[str, Member] = {}
    total = [0]
    for entry in _entries(data, limits):
        if entry.link_to is not None:
            target = files[entry.link_to]
            _count(total, target.size, limits, len(data))
            files[entry.name] = Member(name=entry.name, size=target.size,
                                       executable=target.executable)
            continue
        assert entry.open is not None
        with entry.open() as source:
            size = _copy(source, None, name=entry.name, declared=entry.declared, total=total,
                         limits=limits, compressed=len(data))
        files[entry.name] = Member(name=entry.name, size=size, executable=entry.executable)
    return Inspected(kind=kind_of(data[:4]), files=tuple(files.values()))


def extract(data: bytes, dest: Path, expected: tuple[Member, ...], limits: Limits) -> None:
    """Unpack into ``dest`` (a folder that must not exist yet; it is created), checking the
    archive again as ``inspect`` did, and refusing one whose files differ from ``expected``
    (what ``inspect`` answered when it was uploaded)."""
    os.mkdir(dest, 0o700)
    want = {m.name: m for m in expected}
    written: set[str] = set()
    total = [0]
    for entry in _entries(data, limits):
        member = want.get(entry.name)  # twice is refused by ``_entries``
        if member is None:
            raise BadArchive(f"bundle: member {entry.name!r} was not in the bundle as uploaded")
        path = dest / entry.name
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        mode = 0o755 if member.executable else 0o644
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            if entry.link_to is not None:  # a copy of an earlier file, already written here
                source: IO[bytes] = (dest / entry.link_to).open("rb")
            else:
                assert entry.open is not None
                source = entry.open()
            with source:
                _copy(source, out.write, name=entry.name, declared=member.size, total=total,
                      limits=limits, compressed=len(data))
        written.add(entry.name)
    if written != set(want):
        missing = sorted(set(want) - written)[:5]
        raise BadArchive(f"bundle: members {missing} of the bundle as uploaded are missing")


def check_entrypoint(files: tuple[Member, ...], entrypoint: str) -> str:
    """The file a run of the bundle starts: one of its files; one not ending in ``.sh`` (run
    by ``bash``) must have its exec bit, as it is executed itself."""
    try:
        name = check_name(entrypoint)
    except BadArchive as exc:
        raise BadArchive(exc.message.replace("bundle: member", "entrypoint:", 1)) from None
    found = next((f for f in files if f.name == name), None)
    if found is None:
        listed = ", ".join(f.name for f in files[:10]) or "no files"
        raise BadArchive(
            f"entrypoint: the bundle has no file {entrypoint[:100]!r} (it holds {listed}); "
            "name one of its files, e.g. --entrypoint run.sh"
        )
    if not name.endswith(".sh") and not found.executable:
        raise BadArchive(
            f"entrypoint: {name!r} is not executable in the bundle; set its exec bit, or name "
            "a .sh file (run with bash)"
        )
    return name
