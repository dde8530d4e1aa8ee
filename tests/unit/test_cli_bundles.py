"""The CLI's bundle helpers: a folder zipped as the server will read it, and ids from prefixes."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import httpx
import pytest

from herder.bundles.archive import Limits, inspect
from herder.cli.bundles import resolve, script_of, zip_folder
from herder.cli.client import Client, CliError

IDS = ["ab" * 32, "abab" + "0" * 60, "ff" * 32]


def test_a_folder_is_zipped_with_relative_names_and_exec_bits(tmp_path: Path) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "script.sh").write_text("echo hi\n")
    (tmp_path / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(tmp_path / "bin" / "tool", 0o755)
    data = zip_folder(tmp_path).read()
    assert sorted(zipfile.ZipFile(io.BytesIO(data)).namelist()) == [
        "bin/tool", "script.sh"]
    found = {f.name: f.executable for f in inspect(data, Limits()).files}
    assert found == {"bin/tool": True, "script.sh": False}


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_folder_with_a_link_is_refused_before_sending(tmp_path: Path, kind: str) -> None:
    (tmp_path / "script.sh").write_text("true\n")
    (tmp_path / "link").symlink_to("/etc" if kind == "folder" else "/etc/passwd")
    with pytest.raises(CliError, match="not a regular file"):
        zip_folder(tmp_path)


def client() -> Client:
    def answer(request: httpx.Request) -> httpx.Response:  # as the API pages: ids after cursor
        after, limit = request.url.params["cursor"], int(request.url.params["limit"])
        found = [{"id": i} for i in sorted(IDS) if i > after]
        return httpx.Response(200, json={"items": found[:limit], "next_cursor": None})

    return Client("http://herder.test", transport=httpx.MockTransport(answer))


def test_ids_from_unique_prefixes() -> None:
    with client() as api:
        assert resolve(api, "FF" * 32) == "ff" * 32  # a full id needs no lookup
        assert resolve(api, "ababab") == IDS[0]
        assert script_of(api, "ffff:bin/run") == {"bundle": IDS[2], "entrypoint": "bin/run"}
        with pytest.raises(CliError, match="more than one bundle with an id starting 'abab'"):
            resolve(api, "abab")
        with pytest.raises(CliError, match="no bundle with an id starting"):
            resolve(api, "0000")
        with pytest.raises(CliError, match="is not a bundle id") as bad:
            resolve(api, "../x")
        assert bad.value.exit_code == 2
