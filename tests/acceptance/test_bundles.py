"""Bundles over HTTP: upload, run a bundle job end to end, refuse hostile archives, and keep a
bundle while a job names it."""

from __future__ import annotations

import hashlib
import io
import random
import sqlite3
import tarfile
from collections.abc import Iterator
from typing import Any

import pytest

from tests.acceptance.conftest import short_dir
from tests.servers import Server
from tests.unit.test_bundle_archive import (
    make_tar,
    make_zip,
    tar_file,
    tar_special,
)

pytestmark = pytest.mark.acceptance

SCRIPT = b"""set -eu
echo "hello $HERDER_PARAM_WHO from $(pwd)"
cat lib/greeting.txt
test -x bin/tool && bin/tool
"""


@pytest.fixture(scope="module")
def s() -> Iterator[Server]:
    server = Server(short_dir() / "data", env={"HERDER_BUNDLE_MAX_SIZE": "2000000",
                                               "HERDER_BUNDLE_MAX_ENTRIES": "100",
                                               "HERDER_RUN_FILE_MAX_SIZE": "1000"}).start()
    yield server
    server.close()


def upload(s: Server, data: bytes, **form: str) -> Any:
    return s.client.post("/api/v1/bundles", files={"file": ("whatever.bin", data)}, data=form)


def tool_tar() -> bytes:
    return make_tar(tar_file("script.sh", SCRIPT), tar_file("lib/greeting.txt", b"greetings\n"),
                    tar_file("bin/tool", b"#!/bin/sh\necho tool ran\n", 0o755))


def test_upload_is_kept_once_by_content(s: Server) -> None:
    data = make_zip(("script.sh", b"echo once\n"), ("README", b"x"))
    first = upload(s, data)
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"] == hashlib.sha256(data).hexdigest()
    assert (body["kind"], body["entrypoint"], body["size"]) == ("zip", "script.sh", len(data))
    assert [f["name"] for f in body["files"]] == ["script.sh", "README"]
    again = upload(s, data)
    assert again.status_code == 200 and again.json()["id"] == body["id"]
    assert s.client.get(f"/api/v1/bundles/{body['id']}").json()["files"] == body["files"]
    listed = s.client.get("/api/v1/bundles").json()["items"]
    assert body["id"] in [b["id"] for b in listed]


def test_a_bundle_job_runs_its_entry_point_in_the_unpacked_folder(s: Server) -> None:
    bundle = upload(s, tool_tar()).json()
    job = s.create_job(name="bundled", script={"bundle": bundle["id"]}, params={"who": "ops"})
    assert job["script"] == {"bundle": bundle["id"], "entrypoint": None}
    assert job["command"] is None
    run = s.run("bundled", params={"who": "dev"})
    done = s.wait_end(run["id"])
    assert done["status"] == "SUCCESS", (done, s.log(run["id"]))
    lines = s.log(run["id"]).splitlines()
    assert lines[0].startswith("hello dev from ") and lines[0].endswith(f"/work/{run['id']}")
    assert lines[1:] == ["greetings", "tool ran"]


def test_an_executable_entry_point_is_executed_itself(s: Server) -> None:
    data = make_tar(tar_file("run.py", b"#!/usr/bin/env python3\nprint('py ran')\n", 0o755))
    bundle = upload(s, data, entrypoint="run.py").json()
    assert bundle["entrypoint"] == "run.py"
    s.create_job(name="bundled-py", script={"bundle": bundle["id"]})
    run = s.run("bundled-py")
    assert s.wait_end(run["id"])["status"] == "SUCCESS"
    assert s.log(run["id"]) == "py ran\n"


def test_a_job_naming_a_missing_bundle_or_entry_point_is_refused(s: Server) -> None:
    missing = s.client.post("/api/v1/jobs", json={"name": "nob", "script": {"bundle": "0" * 64}})
    assert missing.status_code == 422
    assert "no bundle with id" in missing.json()["error"]["message"]
    bundle = upload(s, make_zip(("script.sh", b"true\n"))).json()
    wrong = s.client.post("/api/v1/jobs", json={
        "name": "noentry", "script": {"bundle": bundle["id"], "entrypoint": "main.sh"}})
    assert wrong.status_code == 422
    assert wrong.json()["error"]["message"].startswith("script.entrypoint: the bundle has no")
    both = s.client.post("/api/v1/jobs", json={
        "name": "both", "command": "true", "script": {"bundle": bundle["id"]}})
    assert both.status_code == 422 and "not both" in both.json()["error"]["message"]
    bad_id = s.client.post("/api/v1/jobs", json={"name": "bad", "script": {"bundle": "../x"}})
    assert bad_id.status_code == 422
    assert s.client.get("/api/v1/jobs/nob").status_code == 404


def test_a_bundle_is_kept_while_a_job_names_it(s: Server) -> None:
    bundle = upload(s, make_zip(("script.sh", b"echo kept\n"), ("x", b"1"))).json()
    s.create_job(name="user", script={"bundle": bundle["id"]})
    refused = s.client.delete(f"/api/v1/bundles/{bundle['id']}")
    assert refused.status_code == 409
    assert "job default/user" in refused.json()["error"]["message"]
    patched = s.client.patch("/api/v1/jobs/user", json={"command": "true"})
    assert patched.status_code == 200 and patched.json()["script"] is None
    assert s.client.delete(f"/api/v1/bundles/{bundle['id']}").status_code == 204
    assert s.client.get(f"/api/v1/bundles/{bundle['id']}").status_code == 404
    assert s.client.get("/api/v1/bundles/not-an-id").status_code == 404


HOSTILE = {
    "absolute": make_zip(("/etc/cron.d/evil", b"x"), ("script.sh", b"")),
    "dotdot": make_tar(tar_file("../evil.sh", b"x")),
    "symlink": make_tar(tar_special("script.sh", tarfile.SYMTYPE, "/etc/passwd")),
    "hardlink": make_tar(tar_special("script.sh", tarfile.LNKTYPE, "../../etc/shadow")),
    "device": make_tar(tar_file("script.sh", b""), tar_special("dev", tarfile.CHRTYPE)),
    "fifo": make_tar(tar_file("script.sh", b""), tar_special("pipe", tarfile.FIFOTYPE)),
    "entries": make_zip(*((f"f{i}", b"") for i in range(101))),
    "bomb": make_zip(("script.sh", b"\0" * (30 * 1024 * 1024))),
    "duplicate": make_zip(("script.sh", b"1"), ("script.sh", b"2")),
    "no-entry-point": make_zip(("main.sh", b"true")),
    "corrupt": b"PK\x03\x04" + b"\x07" * 500,
    "not-an-archive": b"#!/bin/sh\necho hi\n",
}
MESSAGES = {
    "absolute": "absolute path", "dotdot": "'..'", "symlink": "symbolic link",
    "hardlink": "outside the bundle", "device": "device file", "fifo": "FIFO",
    "entries": "more than 100 entries", "bomb": "times its own size", "duplicate": "twice",
    "no-entry-point": "has no file 'script.sh'", "corrupt": "corrupt zip",
    "not-an-archive": "not a zip or a gzip-compressed tar",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_archives_are_refused_and_nothing_is_kept(s: Server, kind: str) -> None:
    data = HOSTILE[kind]
    response = upload(s, data)
    assert response.status_code == 422, response.text
    assert MESSAGES[kind] in response.json()["error"]["message"]
    digest = hashlib.sha256(data).hexdigest()
    assert s.client.get(f"/api/v1/bundles/{digest}").status_code == 404


def test_an_archive_over_the_size_limit_gets_413(s: Server) -> None:
    noise = random.Random(7).randbytes(2_100_000)  # bytes that do not compress
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        info = tarfile.TarInfo("script.sh")
        info.size = len(noise)
        t.addfile(info, io.BytesIO(noise))
    response = upload(s, buffer.getvalue())
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"


def test_an_upload_over_the_usual_body_limit_but_within_its_own_is_taken(s: Server) -> None:
    noise = random.Random(8).randbytes(1_500_000)  # over HERDER_MAX_BODY's 1 MiB
    response = upload(s, make_tar(tar_file("script.sh", b"true\n"), tar_file("blob", noise)))
    assert response.status_code == 201, response.text
    assert response.json()["unpacked_size"] == 1_500_005


def test_a_stored_bundle_is_checked_again_when_a_run_unpacks_it(s: Server) -> None:
    """Bytes changed behind herder's back (in the store) are refused, not run."""
    kept = upload(s, make_zip(("script.sh", b"echo kept\n"))).json()
    s.create_job(name="tampered", script={"bundle": kept["id"]})
    evil = make_zip(("script.sh", b"echo kept\n"), ("evil.sh", b"echo evil\n"))
    with sqlite3.connect(s.data_dir / "herder.db") as db:
        db.execute("UPDATE bundles SET data = ? WHERE id = ?", (evil, kept["id"]))
    run = s.run("tampered")
    end = s.wait_end(run["id"])
    assert end["status"] == "PROC_ERROR"
    assert "'evil.sh' was not in the bundle as uploaded" in end["error"]
    assert not (s.data_dir / "work" / str(run["id"])).exists()
    assert list((s.data_dir / "work").glob(".*staging*")) == []  # nothing half-unpacked left


@pytest.mark.postgres
def test_bundles_and_input_files_on_postgres(postgres_url: str) -> None:
    server = Server(short_dir() / "data", database_url=postgres_url).start()
    try:
        bundle = upload(server, tool_tar()).json()
        server.create_job(name="pg-bundled", script={"bundle": bundle["id"]},
                          params={"who": "pg"})
        run = server.run("pg-bundled", manual_start=True)
        put = server.client.put(f"/api/v1/runs/{run['id']}/files/x.txt", content=b"x")
        assert put.status_code == 201
        assert server.client.post(f"/api/v1/runs/{run['id']}/approve").status_code == 200
        assert server.wait_end(run["id"])["status"] == "SUCCESS"
        assert server.log(run["id"]).splitlines()[1:] == ["greetings", "tool ran"]
        assert (server.data_dir / "work" / str(run["id"]) / "inputs" / "x.txt").read_bytes() \
            == b"x"
    finally:
        server.close()


def test_an_upload_without_a_file_is_a_clear_422(s: Server) -> None:
    response = s.client.post("/api/v1/bundles", data={"entrypoint": "x"})
    assert response.status_code == 422
    assert "file" in response.json()["error"]["message"]
    junk = upload(s, make_zip(("script.sh", b"")), namespace="Not A Name")
    assert junk.status_code == 422 and "namespace" in junk.json()["error"]["message"]


def test_the_bundle_list_pages_on(s: Server) -> None:
    for i in range(3):
        assert upload(s, make_zip(("script.sh", f"echo {i}\n".encode()))).status_code in (200, 201)
    every = s.client.get("/api/v1/bundles", params={"limit": 1000}).json()["items"]
    seen, cursor = [], None
    while True:
        page = s.client.get("/api/v1/bundles", params={"limit": 2, "cursor": cursor}
                            if cursor else {"limit": 2}).json()
        seen += [b["id"] for b in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [b["id"] for b in every] and len(seen) >= 3
