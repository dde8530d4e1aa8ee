"""The CLI for bundles, input files and approval, against a real server."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from tests.servers import Server

pytestmark = pytest.mark.acceptance


def folder(tmp_path: Path) -> Path:
    root = tmp_path / "tool"
    (root / "lib").mkdir(parents=True)
    (root / "script.sh").write_text('echo "from $(basename "$PWD"): $(cat lib/msg)"\n'
                                    'cat "$HERDER_INPUTS/data.txt" 2>/dev/null || true\n')
    (root / "lib" / "msg").write_text("packed by the CLI\n")
    (root / "bin").mkdir()
    (root / "bin" / "go").write_text("#!/bin/sh\necho go ran\n")
    os.chmod(root / "bin" / "go", 0o755)
    return root


def test_upload_a_folder_and_run_it(shared_server: Server, tmp_path: Path) -> None:
    s = shared_server
    root = folder(tmp_path)
    uploaded = s.cli("bundle", "upload", str(root), "-o", "json")
    assert uploaded.returncode == 0, uploaded.stderr
    bundle = json.loads(uploaded.stdout)
    assert sorted(f["name"] for f in bundle["files"]) == ["bin/go", "lib/msg", "script.sh"]
    assert {f["name"]: f["executable"] for f in bundle["files"]}["bin/go"] is True
    again = s.cli("bundle", "upload", str(root))
    assert again.returncode == 0 and "already kept" in again.stderr
    assert again.stdout.strip() == bundle["id"]
    listed = s.cli("bundle", "list")
    assert bundle["id"][:12] in listed.stdout and "script.sh" in listed.stdout
    shown = s.cli("bundle", "show", bundle["id"][:8])
    assert shown.returncode == 0 and "bin/go" in shown.stdout
    created = s.cli("job", "create", "cli-bundled", "--script", bundle["id"][:10])
    assert created.returncode == 0, created.stderr
    ran = s.cli("run", "cli-bundled", "--wait")
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(s.cli("runs", "--job", "cli-bundled", "-o", "json").stdout)["items"][0]
    assert s.cli("logs", str(run_id["id"])).stdout.endswith(": packed by the CLI\n")
    other = s.cli("job", "create", "cli-go", "--script", f"{bundle['id']}:bin/go")
    assert other.returncode == 0, other.stderr
    assert s.cli("run", "cli-go", "--follow").stdout.startswith("go ran\n")
    exported = next(doc for doc in yaml.safe_load_all(s.cli("export").stdout)
                    if doc["metadata"]["name"] == "cli-go")
    assert exported["spec"]["script"] == {"bundle": bundle["id"], "entrypoint": "bin/go"}
    assert "command" not in exported["spec"]


def test_run_with_files_and_approve(shared_server: Server, tmp_path: Path) -> None:
    s = shared_server
    bundle = s.cli("bundle", "upload", str(folder(tmp_path))).stdout.strip()
    assert s.cli("job", "create", "cli-inputs", "--script", bundle).returncode == 0
    data = tmp_path / "local-name.txt"
    data.write_text("the input\n")
    ran = s.cli("run", "cli-inputs", "--file", f"data.txt={data}", "--wait")
    assert ran.returncode == 0, ran.stderr
    last = json.loads(s.cli("runs", "--job", "cli-inputs", "-o", "json").stdout)["items"][0]
    assert s.cli("logs", str(last["id"])).stdout.endswith("the input\n")
    manual = s.cli("run", "cli-inputs", "--manual", "--file", f"data.txt={data}")
    assert manual.returncode == 0 and "herder approve" in manual.stderr
    run_id = int(manual.stdout.strip())
    assert s.get_run(run_id)["status"] == "ACTION_PENDING"
    approved = s.cli("approve", str(run_id))
    assert approved.returncode == 0, approved.stderr
    assert s.wait_end(run_id)["status"] == "SUCCESS"
    refused = s.cli("approve", str(run_id))
    assert refused.returncode == 1 and "only a run waiting for a person" in refused.stderr


def test_cli_refusals_are_clear(shared_server: Server, tmp_path: Path) -> None:
    s = shared_server
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"not really a zip")
    bad = s.cli("bundle", "upload", str(junk))
    assert bad.returncode == 1 and "not a zip or a gzip-compressed tar" in bad.stderr
    linked = folder(tmp_path)
    (linked / "escape").symlink_to("/etc/passwd")
    assert "not a regular file" in s.cli("bundle", "upload", str(linked)).stderr
    assert "no bundle with an id" in s.cli("job", "create", "x", "--script", "abcdef").stderr
    s.cli("job", "create", "cli-plain", "--", "true")
    bad_name = s.cli("run", "cli-plain", "--file", f"../x={junk}")
    assert bad_name.returncode == 1 and "is not allowed" in bad_name.stderr
    assert "was cancelled" in bad_name.stderr


def test_a_manifest_applies_a_script_job_idempotently(shared_server: Server,
                                                      tmp_path: Path) -> None:
    s = shared_server
    root = folder(tmp_path)
    (root / "only-here.txt").write_text(str(tmp_path))  # bytes no other test uploads
    bundle = s.cli("bundle", "upload", str(root)).stdout.strip()
    manifest = tmp_path / "job.yaml"
    manifest.write_text(yaml.safe_dump({
        "apiVersion": "herder/v1", "kind": "Job", "metadata": {"name": "cli-applied"},
        "spec": {"script": {"bundle": bundle}, "params": {"who": "ops"}},
    }))
    first = s.cli("apply", "-f", str(manifest))
    assert first.returncode == 0 and "created" in first.stdout, first.stderr
    second = s.cli("apply", "-f", str(manifest))
    assert second.returncode == 0 and "unchanged" in second.stdout, second.stdout
    shown = s.cli("job", "show", "cli-applied")
    assert f"bundle: {bundle}" in shown.stdout
    assert s.cli("run", "cli-applied", "--wait").returncode == 0
    in_use = s.cli("bundle", "delete", bundle[:12])
    assert in_use.returncode == 1 and "job default/cli-applied" in in_use.stderr
    assert s.cli("job", "delete", "cli-applied", "--yes").returncode == 0
    deleted = s.cli("bundle", "delete", bundle[:12])
    assert deleted.returncode == 0, deleted.stderr
    assert s.cli("bundle", "show", bundle).returncode == 1
