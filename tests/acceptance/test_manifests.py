"""``herder apply``, ``diff`` and ``export`` against a real server: manifests kept in git."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.servers import Server

pytestmark = pytest.mark.acceptance


def job(name: str, namespace: str, **spec: object) -> str:
    manifest = {
        "apiVersion": "herder/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": "mf"}},
        "spec": {"command": ["echo", name], **spec},
    }
    return yaml.safe_dump(manifest, sort_keys=False)


def write(path: Path, *documents: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("---\n".join(documents))
    return path


def stdin_cli(server: Server, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "herder", *args], input=text, capture_output=True, text=True,
        env=server.env | {"HERDER_URL": server.url}, timeout=60, check=False,
    )


def test_apply_creates_then_reports_unchanged(shared_server: Server, tmp_path: Path) -> None:
    f = write(
        tmp_path / "jobs.yaml",
        job("backup", "mf-one", schedule={"cron": "0 3 * * *", "timezone": "Europe/Rome"},
            timeout="1h", retries={"limit": 3, "backoff": "10s"}, concurrency="forbid",
            misfire={"policy": "skip", "grace": "5m"}),
        job("report", "mf-one", schedule={"every": "90s"}, env={"A": "b"}),
    )

    created = shared_server.cli("apply", "-f", str(f))
    assert created.returncode == 0, created.stderr
    assert created.stdout == "job mf-one/backup created\njob mf-one/report created\n"
    assert shared_server.client.get("/api/v1/jobs/mf-one/backup").json()["timeout"] == 3600.0
    before = shared_server.client.get("/api/v1/jobs/mf-one/backup").json()

    again = shared_server.cli("apply", "-f", str(f))
    assert again.returncode == 0, again.stderr
    assert again.stdout == "job mf-one/backup unchanged\njob mf-one/report unchanged\n"
    after = shared_server.client.get("/api/v1/jobs/mf-one/backup").json()
    assert after["updated_at"] == before["updated_at"]  # nothing was sent
    assert shared_server.cli("diff", "-f", str(f)).returncode == 0


def test_a_changed_field_shows_in_diff_then_applies_as_updated(
    shared_server: Server, tmp_path: Path
) -> None:
    f = write(tmp_path / "a.yaml", job("etl", "mf-two", timeout="10m"), job("x", "mf-two"))
    assert shared_server.cli("apply", "-f", str(f)).returncode == 0
    write(f, job("etl", "mf-two", timeout="15m"), job("x", "mf-two"))

    diffed = shared_server.cli("diff", "-f", str(f))
    assert diffed.returncode == 1, diffed.stderr
    assert diffed.stdout.startswith("--- server: job mf-two/etl\n+++ ")
    assert "\n-  timeout: 10m\n+  timeout: 15m\n" in diffed.stdout
    assert "mf-two/x" not in diffed.stdout

    applied = shared_server.cli("-o", "json", "apply", "-f", str(f))
    assert applied.returncode == 0, applied.stderr
    results = {i["name"]: i["result"] for i in json.loads(applied.stdout)["items"]}
    assert results == {"etl": "updated", "x": "unchanged"}
    assert shared_server.client.get("/api/v1/jobs/mf-two/etl").json()["timeout"] == 900.0
    assert shared_server.cli("diff", "-f", str(f)).returncode == 0


def test_export_then_apply_reports_everything_unchanged(
    shared_server: Server, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "in.yaml",
        job("a", "mf-three", schedule={"cron": "*/5 * * * *", "jitter": "3s"}, enabled=False,
            params={"n": 3, "flag": True}, timeout=90.5, max_active=2, concurrency="queue",
            retries=2, description="several fields"),
        job("b", "mf-three", command="echo {{ params.x | shell_quote }}", params={"x": "y"}),
    )
    assert shared_server.cli("apply", "-f", str(f)).returncode == 0

    out = tmp_path / "exported"
    exported = shared_server.cli("export", "-n", "mf-three", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    assert sorted(p.name for p in (out / "mf-three").iterdir()) == ["job-a.yaml", "job-b.yaml"]
    reapplied = shared_server.cli("apply", "-f", str(out))
    assert reapplied.returncode == 0, reapplied.stderr
    assert reapplied.stdout == "job mf-three/a unchanged\njob mf-three/b unchanged\n"

    stream = shared_server.cli("export", "-n", "mf-three")
    assert stream.returncode == 0, stream.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(stream.stdout)] == ["a", "b"]
    piped = stdin_cli(shared_server, stream.stdout, "apply", "-f", "-")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == "job mf-three/a unchanged\njob mf-three/b unchanged\n"
    assert stdin_cli(shared_server, stream.stdout, "diff", "-f", "-").returncode == 0


def test_an_invalid_document_in_a_set_applies_nothing(
    shared_server: Server, tmp_path: Path
) -> None:
    folder = tmp_path / "set"
    write(folder / "good.yaml", job("fine", "mf-four"))
    write(folder / "more.yaml", job("also-fine", "mf-four"),
          "apiVersion: herder/v1\nkind: Workflow\nmetadata: {name: wf}\nspec: {steps: []}\n")

    result = shared_server.cli("apply", "-f", str(folder))

    assert result.returncode == 2
    assert (f"{folder / 'more.yaml'}: document 2 (line 13): spec.steps: must be a list of "
            "steps, at least one") in result.stderr
    assert "nothing was applied" in result.stderr
    listed = shared_server.client.get("/api/v1/jobs", params={"namespace": "mf-four"}).json()
    assert listed["items"] == []


def test_a_refusal_by_the_server_stops_the_apply_and_says_how_far(
    shared_server: Server, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "a.yaml",
        job("first", "mf-five"),
        job("once", "mf-five", schedule={"at": "2020-01-01T00:00:00Z"}),  # in the past
        job("third", "mf-five"),
    )

    result = shared_server.cli("apply", "-f", str(f))

    assert result.returncode == 1
    assert result.stdout == "job mf-five/first created\n"
    assert "document 2 (line " in result.stderr and "in the past" in result.stderr
    assert "1 of 3 applied before it" in result.stderr
    assert shared_server.client.get("/api/v1/jobs/mf-five/third").status_code == 404


def test_a_namespace_manifest_sets_its_retention(shared_server: Server, tmp_path: Path) -> None:
    def namespace(**spec: object) -> str:
        return yaml.safe_dump({"apiVersion": "herder/v1", "kind": "Namespace",
                               "metadata": {"name": "kept"}, **({"spec": spec} if spec else {})})

    f = write(tmp_path / "ns.yaml", namespace(retention={"max_runs": 50}), job("a", "kept"))
    applied = shared_server.cli("apply", "-f", str(f))
    assert applied.stdout.splitlines() == ["namespace kept created", "job kept/a created"]
    served = shared_server.client.get("/api/v1/namespaces/kept").json()
    assert served["retention"] == {"max_runs": 50}
    assert shared_server.cli("apply", "-f", str(f)).stdout.splitlines()[0] == (
        "namespace kept unchanged")
    write(f, namespace(retention={"max_runs": 50, "max_age": "30d"}), job("a", "kept"))
    diffed = shared_server.cli("diff", "-f", str(f))
    assert diffed.returncode == 1 and "+    max_age: 30d" in diffed.stdout, diffed.stdout
    assert shared_server.cli("apply", "-f", str(f)).stdout.splitlines()[0] == (
        "namespace kept updated")
    served = shared_server.client.get("/api/v1/namespaces/kept").json()
    assert served["retention"] == {"max_age": "30d", "max_runs": 50}
    # A manifest that names no retention leaves the namespace's as it is.
    write(f, namespace(), job("a", "kept"))
    assert shared_server.cli("apply", "-f", str(f)).stdout.splitlines()[0] == (
        "namespace kept unchanged")
