"""Bundle archives: good ones are listed and unpacked, each kind of hostile one is refused with
its own message (every archive is built here)."""

from __future__ import annotations

import io
import stat
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from herder.bundles.archive import (
    BadArchive,
    Limits,
    Member,
    check_entrypoint,
    extract,
    inspect,
)

LIMITS = Limits()


def make_zip(*members: tuple[str, bytes] | zipfile.ZipInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names; we want them
        for member in members:
            if isinstance(member, zipfile.ZipInfo):
                z.writestr(member, data)
            else:
                z.writestr(member[0], member[1])
    return buffer.getvalue()


def zip_info(name: str, mode: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = mode << 16
    return info


def make_tar(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            t.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buffer.getvalue()


def tar_file(name: str, data: bytes, mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def tar_special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, b""


def test_a_zip_lists_its_files_with_sizes_and_exec_bits(tmp_path: Path) -> None:
    data = make_zip(zip_info("script.sh", stat.S_IFREG | 0o755), data=b"echo hi\n")
    more = make_zip(("script.sh", b"echo hi\n"), ("lib/util.py", b"x = 1\n"), ("lib/", b""))
    assert inspect(data, LIMITS).files == (Member(name="script.sh", size=8, executable=True),)
    found = inspect(more, LIMITS)
    assert found.kind == "zip"
    assert [(f.name, f.size) for f in found.files] == [("script.sh", 8), ("lib/util.py", 6)]
    extract(more, tmp_path / "out", found.files, LIMITS)
    assert (tmp_path / "out" / "lib" / "util.py").read_bytes() == b"x = 1\n"


def test_a_tar_gz_is_told_by_content_and_unpacked_with_modes(tmp_path: Path) -> None:
    data = make_tar(tar_file("./run", b"#!/bin/sh\necho ok\n", 0o755),
                    tar_file("data/a.txt", b"abc"), tar_special("data/b.txt", tarfile.LNKTYPE,
                                                                "data/a.txt"))
    found = inspect(data, LIMITS)
    assert found.kind == "tar.gz"
    assert found.files == (Member(name="run", size=18, executable=True),
                           Member(name="data/a.txt", size=3, executable=False),
                           Member(name="data/b.txt", size=3, executable=False))
    extract(data, tmp_path / "out", found.files, LIMITS)
    assert (tmp_path / "out" / "run").stat().st_mode & 0o111
    assert (tmp_path / "out" / "data" / "b.txt").read_bytes() == b"abc"  # a copy, not a link
    assert (tmp_path / "out" / "data" / "b.txt").stat().st_nlink == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (make_zip(("/etc/cron.d/evil", b"x")), "absolute path"),
        (make_tar(tar_file("/etc/cron.d/evil", b"x")), "absolute path"),
        (make_zip(("../evil.sh", b"x")), "outside the bundle ('..')"),
        (make_tar(tar_file("a/../../evil.sh", b"x")), "outside the bundle ('..')"),
        (make_zip(("a\\..\\evil", b"x")), "backslash"),
        (make_tar(tar_special("link", tarfile.SYMTYPE, "/etc/passwd")), "symbolic link"),
        (make_tar(tar_special("link", tarfile.SYMTYPE, "inside.txt")), "symbolic link"),
        (make_zip(zip_info("link", stat.S_IFLNK | 0o777), data=b"/etc/passwd"), "symbolic link"),
        (make_tar(tar_special("hard", tarfile.LNKTYPE, "../../etc/passwd")),
         "hard link to '../../etc/passwd', outside the bundle"),
        (make_tar(tar_special("hard", tarfile.LNKTYPE, "/etc/passwd")), "outside the bundle"),
        (make_tar(tar_special("hard", tarfile.LNKTYPE, "later.txt"), tar_file("later.txt", b"x")),
         "not an earlier file"),
        (make_tar(tar_special("dev", tarfile.CHRTYPE)), "device file"),
        (make_tar(tar_special("blk", tarfile.BLKTYPE)), "device file"),
        (make_tar(tar_special("fifo", tarfile.FIFOTYPE)), "a FIFO"),
        (make_zip(zip_info("fifo", stat.S_IFIFO | 0o644)), "device file or FIFO"),
        (make_zip(("a.sh", b"1"), ("a.sh", b"2")), "'a.sh' appears twice"),
        (make_tar(tar_file("a.sh", b"1"), tar_file("./a.sh", b"2")), "'a.sh' appears twice"),
        (make_zip(("a", b"1"), ("a/b", b"2")), "under 'a', a file"),
        (make_zip(("inputs/x", b"1")), "kept for herder"),
        (b"PK\x03\x04" + b"\x00" * 200, "corrupt zip"),
        (make_zip(("a.sh", b"echo hi" * 100))[:-30], "corrupt zip"),
        (make_tar(tar_file("a.sh", b"echo hi" * 1000))[:-40], "corrupt tar.gz"),
        (b"\x1f\x8b" + b"\x01" * 100, "corrupt tar.gz"),
        (b"#!/bin/sh\necho not an archive\n", "not a zip or a gzip-compressed tar"),
        (b"", "not a zip or a gzip-compressed tar"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_hostile_archives_are_refused(data: bytes, message: str, tmp_path: Path) -> None:
    with pytest.raises(BadArchive) as refused:
        inspect(data, LIMITS)
    assert message in refused.value.message
    assert refused.value.message.startswith("bundle: ")
    # Unpacking it (as if a stored one had been tampered with) is refused too.
    with pytest.raises(BadArchive):
        extract(data, tmp_path / "out", (), LIMITS)


def test_too_many_entries() -> None:
    data = make_zip(*((f"f{i}", b"x") for i in range(6)))
    with pytest.raises(BadArchive, match="more than 5 entries"):
        inspect(data, Limits(max_entries=5))
    assert len(inspect(data, Limits(max_entries=6)).files) == 6


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_too_big_unpacked(kind: str) -> None:
    member = ("big.bin", bytes(range(256)) * 8)  # 2048 bytes that do not compress much
    data = make_zip(member) if kind == "zip" else make_tar(tar_file(*member))
    with pytest.raises(BadArchive, match=r"more than 1000 bytes|more than the size limit"):
        inspect(data, Limits(max_unpacked=1000))


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_a_compression_bomb_is_refused_by_the_bytes_it_expands_to(kind: str) -> None:
    zeros = ("zeros.bin", b"\0" * (20 * 1024 * 1024))  # ~20 KiB compressed: ratio ~1000
    data = make_zip(zeros) if kind == "zip" else make_tar(tar_file(*zeros))
    assert len(data) < 100 * 1024
    with pytest.raises(BadArchive, match="times its own size"):
        inspect(data, LIMITS)


def test_a_zip_whose_header_understates_its_size_is_refused() -> None:
    real = b"A" * 5000
    data = bytearray(make_zip(("a.txt", real)))
    declared = (5000).to_bytes(4, "little")
    small = (10).to_bytes(4, "little")
    # Both the local header and the central directory lie: "10 bytes".
    while (at := data.find(declared)) >= 0:
        data[at : at + 4] = small
    with pytest.raises(BadArchive, match="corrupt"):
        inspect(bytes(data), LIMITS)


def test_extract_refuses_an_archive_that_differs_from_its_listing(tmp_path: Path) -> None:
    data = make_zip(("script.sh", b"echo hi\n"), ("extra.sh", b"rm -rf /\n"))
    listed = (Member(name="script.sh", size=8, executable=False),)
    with pytest.raises(BadArchive, match=r"'extra.sh' was not in the bundle as uploaded"):
        extract(data, tmp_path / "out", listed, LIMITS)
    with pytest.raises(BadArchive, match="missing"):
        extract(make_zip(("script.sh", b"echo hi\n")), tmp_path / "again",
                (*listed, Member(name="gone", size=1, executable=False)), LIMITS)


def test_extract_never_writes_into_an_existing_folder(tmp_path: Path) -> None:
    data = make_zip(("script.sh", b"echo hi\n"))
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError):
        extract(data, tmp_path / "out", inspect(data, LIMITS).files, LIMITS)


def test_entry_points() -> None:
    files = (Member(name="script.sh", size=1, executable=False),
             Member(name="bin/run", size=1, executable=True),
             Member(name="notes.txt", size=1, executable=False))
    assert check_entrypoint(files, "script.sh") == "script.sh"
    assert check_entrypoint(files, "./bin/run") == "bin/run"
    with pytest.raises(BadArchive, match=r"has no file 'main.sh'"):
        check_entrypoint(files, "main.sh")
    with pytest.raises(BadArchive, match="not executable"):
        check_entrypoint(files, "notes.txt")
    with pytest.raises(BadArchive, match=r"entrypoint: .*outside the bundle"):
        check_entrypoint(files, "../script.sh")


def test_a_zip_whose_headers_disagree_on_a_name_is_refused() -> None:
    data = bytearray(make_zip(("a.txt", b"x")))
    at = data.find(b"a.txt")  # the local header's copy; the central directory keeps "a.txt"
    data[at : at + 5] = b"b.txt"
    with pytest.raises(BadArchive, match=r"member 'a.txt' is corrupt"):
        inspect(bytes(data), LIMITS)


def test_a_zip_declaring_too_many_entries_is_refused_before_they_are_read() -> None:
    data = bytearray(make_zip(("a", b"")))
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (60_000).to_bytes(2, "little") * 2  # the end record's counts
    with pytest.raises(BadArchive, match="more than 10000 entries"):
        inspect(bytes(data), LIMITS)


def test_a_tar_whose_headers_are_the_bomb_is_refused() -> None:
    """A pax header is no member, yet tarfile holds it whole: its bytes count too."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.PAX_FORMAT) as t:
        info = tarfile.TarInfo("script.sh")
        info.pax_headers = {"comment": "x" * (8 * 1024 * 1024)}
        t.addfile(info, io.BytesIO(b""))
    with pytest.raises(BadArchive, match="times its own size"):
        inspect(buffer.getvalue(), LIMITS)
