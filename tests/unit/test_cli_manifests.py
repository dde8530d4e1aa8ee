"""Manifests without a server: reading, hostile files, validation with positions, the diff, the
export form, and ``apply``/``diff``/``export`` against an in-memory API."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from herder.cli import apply as apply_cmd
from herder.cli.apply import Change, apply_change, diff_lines, plan, to_manifest, write_tree
from herder.cli.client import Client, CliError
from herder.cli.main import app
from herder.cli.manifests import (
    MAX_FILE_BYTES,
    ManifestError,
    normalize_job,
    read_job_file,
    read_manifests,
)

NIGHTLY = """\
apiVersion: herder/v1
kind: Job
metadata: {name: nightly, namespace: ops, labels: {team: data}}
spec:
  command: ["pg_dump", "{{ params.db }}"]
  params: {db: sales}
  schedule: {cron: "0 3 * * *", timezone: Europe/Rome}
  timeout: 1h
  retries: {limit: 3, backoff: 10s}
  concurrency: forbid
"""
HELLO = """\
apiVersion: herder/v1
kind: Job
metadata: {name: hello}
spec: {command: echo hi}
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def problems(*paths: Path | str) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        read_manifests([str(p) for p in paths])
    assert caught.value.exit_code == 2
    return caught.value.problems


# -- reading ----------------------------------------------------------------------------------


def test_several_documents_per_file_each_with_its_position(tmp_path: Path) -> None:
    f = write(tmp_path / "jobs.yaml", f"{NIGHTLY}---\n{HELLO}---\n")

    found = read_manifests([str(f)])

    assert [m.ref for m in found] == ["ops/nightly", "default/hello"]
    assert [str(m.source) for m in found] == [
        f"{f}: document 1 (line 1)",
        f"{f}: document 2 (line 12)",  # the line after its ---
    ]
    nightly = found[0]
    assert nightly.body["timeout"] == "1h"  # sent as written
    assert nightly.spec["timeout"] == 3600.0  # compared as the server stores it
    assert nightly.spec["labels"] == {"team": "data"}
    assert nightly.spec["retries"]["backoff"] == "10s"


def test_a_folder_is_read_recursively_in_name_order_skipping_hidden_names(tmp_path: Path) -> None:
    write(tmp_path / "b" / "job-hello.yaml", HELLO)
    write(tmp_path / "a.yml", NIGHTLY)
    write(tmp_path / ".git" / "x.yaml", "not: [a manifest")
    write(tmp_path / ".hidden.yaml", "nonsense: [")
    write(tmp_path / "README.md", "# not read")
    write(tmp_path / "c.json", json.dumps(
        {"apiVersion": "herder/v1", "kind": "Job", "metadata": {"name": "from-json"},
         "spec": {"command": ["true"]}}
    ))

    found = read_manifests([str(tmp_path)])

    assert [m.name for m in found] == ["nightly", "hello", "from-json"]


def test_stdin_is_read_with_dash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(apply_cmd, "plan", lambda api, ms: seen.extend(ms) or [])
    result = CliRunner().invoke(app, ["apply", "-f", "-"], input=HELLO)
    assert result.exit_code == 0, result.output
    assert [str(m.source) for m in seen] == ["<stdin>: document 1 (line 1)"]


# -- positions of problems, and nothing applied --------------------------------------------


def test_every_problem_is_reported_with_file_and_document(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "\n---\n".join([
        HELLO,
        "apiVersion: herder/v1\nkind: Trigger\nmetadata: {name: w}\nspec: {}",
        "- just\n- a list",
        "apiVersion: herder/v1\nkind: Job\nmetadata: {namespace: ops}\nspec: {command: x}",
        "apiVersion: herder/v1\nmetadata: {name: x}\nspec: {command: x}",
        "apiVersion: herder/v2\nkind: Job\nmetadata: {name: x}\nspec: {command: x}",
        "apiVersion: herder/v1\nkind: Job\nmetadata: {name: x}\nspec: {command: x}\nstatus: {}",
        "apiVersion: herder/v1\nkind: Job\nmetadata: {name: y}\nspec: {command: x, name: z}",
        "apiVersion: herder/v1\nkind: Jbo\nmetadata: {name: y}\nspec: {command: x}",
    ]))

    found = problems(bad)

    assert found == [
        f"{bad}: document 2 (line 7): kind: 'Trigger' is not supported by this herder yet; "
        "supported: Namespace, Job, Workflow",
        f"{bad}: document 3 (line 12): expected a manifest (a mapping), got a list",
        f"{bad}: document 4 (line 15): metadata.name: missing",
        f"{bad}: document 5 (line 20): kind: missing; give one of Namespace, Job, Workflow",
        f"{bad}: document 6 (line 24): apiVersion: 'herder/v2' is not supported; give herder/v1",
        f"{bad}: document 7 (line 29): unknown field 'status'; a manifest has apiVersion, kind, "
        "metadata and spec",
        f"{bad}: document 8 (line 35): spec.name: belongs in metadata",
        f"{bad}: document 9 (line 40): kind: 'Jbo' is unknown; supported: Namespace, Job, Workflow",
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{command: x, timeout: -1}", "spec.timeout: must be greater than zero"),
        ("{command: x, schedule: {cron: nope}}", "spec.schedule: cron: 'nope'"),
        ("{command: x, colour: red}", "spec.colour: unknown field; a Job spec has description"),
        ("{timeout: 1h}", "spec.command: missing"),
        ("{command: x, concurrency: sometimes}", "spec.concurrency:"),
    ],
)
def test_spec_errors_name_the_field_as_written(tmp_path: Path, spec: str, expected: str) -> None:
    f = write(tmp_path / "j.yaml", f"apiVersion: herder/v1\nkind: Job\nmetadata: {{name: j}}\n"
                                   f"spec: {spec}\n")
    [problem] = problems(f)
    assert problem.startswith(f"{f}: document 1 (line 1): {expected}"), problem


def test_a_bad_name_is_a_metadata_problem(tmp_path: Path) -> None:
    f = write(tmp_path / "j.yaml", "apiVersion: herder/v1\nkind: Job\nmetadata: {name: Bad!}\n"
                                   "spec: {command: x}\n")
    [problem] = problems(f)
    assert ": metadata.name: 'Bad!' is not a valid name" in problem


def test_the_same_object_twice_is_refused(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", HELLO)
    b = write(tmp_path / "b.yaml", HELLO.replace("echo hi", "echo ho"))
    assert problems(a, b) == [
        f"{b}: document 1 (line 1): job default/hello is also defined at "
        f"{a}: document 1 (line 1)"
    ]


def test_no_manifests_at_all_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "empty.yaml", "---\n# nothing\n---\n")
    [problem] = problems(tmp_path)
    assert problem.startswith("no manifests found")


# -- hostile files --------------------------------------------------------------------------


def bomb(levels: int = 9) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines.extend(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)
    )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("key: [unclosed", "not valid YAML: line 1: expected ',' or ']'"),
        ("a: b\n\tc: d\n", "not valid YAML: line 2:"),
        (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8 text"),
        (bomb(), "expands to more than 250000 values (YAML aliases multiplying it?)"),
        ("a: &a [*a]\n", "nested deeper than 64 levels"),
        ("[" * 5000, "nested deeper than 64 levels"),
        ("{" * 5000, "nested deeper than 64 levels"),
        ("1: x\n", "the key 1 is not a string; quote it"),
        ("a: !!binary aGVsbG8=\n", "a: a bytes value has no JSON form"),
        ("a: !!python/object:os.system {}\n", "line 1: could not determine a constructor"),
        ("a: 1\na: 2\n", "not valid YAML: line 2: the key 'a' is given twice"),
    ],
)
def test_hostile_files_are_refused_with_a_reason(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    f = write(tmp_path / "x.yaml", content)
    [problem] = problems(f)
    assert problem.startswith(f"{f}: ")
    assert expected in problem, problem


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    f = write(tmp_path / "huge.yaml", "#" * (MAX_FILE_BYTES + 1))
    assert problems(f) == [f"{f}: larger than 1024 KiB; split it into several files"]


def test_a_symlink_out_of_a_folder_is_not_followed(tmp_path: Path) -> None:
    outside = write(tmp_path / "secret" / "passwd.yaml", HELLO)
    folder = tmp_path / "manifests"
    write(folder / "ok.yaml", NIGHTLY)
    (folder / "evil.yaml").symlink_to(outside)
    (folder / "sub").symlink_to(outside.parent, target_is_directory=True)

    found = problems(folder)

    assert len(found) == 2
    assert all("outside" in p and "not followed" in p for p in found)
    assert found[0].startswith(f"{folder / 'evil.yaml'}: a symlink to {outside}")


def test_a_symlink_inside_a_folder_is_skipped(tmp_path: Path) -> None:
    write(tmp_path / "real.yaml", HELLO)
    (tmp_path / "alias.yaml").symlink_to(tmp_path / "real.yaml")
    assert [m.name for m in read_manifests([str(tmp_path)])] == ["hello"]


def test_a_fifo_in_a_folder_is_not_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.yaml")
    assert problems(tmp_path) == [f"{tmp_path / 'pipe.yaml'}: not a regular file"]


def test_job_create_file_reads_one_document_with_the_same_limits(tmp_path: Path) -> None:
    assert read_job_file(write(tmp_path / "j.json", '{"name": "j", "command": "x"}')) == {
        "name": "j", "command": "x"
    }
    assert read_job_file(write(tmp_path / "m.yaml", NIGHTLY))["namespace"] == "ops"
    with pytest.raises(CliError, match="holds 2 documents"):
        read_job_file(write(tmp_path / "two.yaml", f"{NIGHTLY}---\n{HELLO}"))
    with pytest.raises(CliError, match="expands to more than"):
        read_job_file(write(tmp_path / "bomb.yaml", bomb()))


# -- the export form and the diff -----------------------------------------------------------


def server_job(body: dict[str, Any], job_id: int = 1) -> dict[str, Any]:
    """What the API answers for a job: the normalized spec and its bookkeeping."""
    return {
        "id": job_id, "ref": f"{body.get('namespace', 'default')}/{body['name']}",
        **normalize_job(body), "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z", "run_count": 4, "next_run_at": None,
    }


def test_export_form_leaves_out_bookkeeping_and_defaults() -> None:
    [m] = read_manifests_text(NIGHTLY)
    manifest = to_manifest(server_job(m.body))
    assert manifest == {
        "apiVersion": "herder/v1",
        "kind": "Job",
        "metadata": {"name": "nightly", "namespace": "ops", "labels": {"team": "data"}},
        "spec": {
            "command": ["pg_dump", "{{ params.db }}"],
            "params": {"db": "sales"},
            "schedule": {"cron": "0 3 * * *", "timezone": "Europe/Rome"},
            "timeout": "1h",
            "retries": {"limit": 3, "backoff": "10s", "factor": 2.0, "max_backoff": "10m",
                        "jitter": 0.1},
            "concurrency": "forbid",
        },
    }


def test_an_exported_manifest_reads_back_to_the_same_spec(tmp_path: Path) -> None:
    [m] = read_manifests_text(NIGHTLY.replace("timeout: 1h", "timeout: 90.5"))
    exported = yaml.safe_dump(to_manifest(server_job(m.body)))
    [again] = read_manifests([str(write(tmp_path / "e.yaml", exported))])
    assert again.spec == m.spec


def read_manifests_text(text: str) -> list[Any]:
    with tempfile.TemporaryDirectory() as folder:
        return read_manifests([str(write(Path(folder) / "m.yaml", text))])


def test_diff_of_a_changed_field_shows_the_line() -> None:
    [m] = read_manifests_text(NIGHTLY.replace("timeout: 1h", "timeout: 2h"))
    live = {k: v for k, v in server_job({**m.body, "timeout": "1h"}).items() if k in m.spec}

    lines = diff_lines(Change(m, live))

    assert lines[0] == "--- server: job ops/nightly"
    assert lines[1].startswith("+++ ") and lines[1].endswith(
        "m.yaml: document 1 (line 1): job ops/nightly"
    )
    assert [x for x in lines[2:] if x[:1] in "+-"] == ["-  timeout: 1h", "+  timeout: 2h"]


def test_diff_of_a_new_object_is_all_added_and_of_an_unchanged_one_empty() -> None:
    [m] = read_manifests_text(HELLO)
    created = diff_lines(Change(m, None))
    assert created[0] == "--- /dev/null"
    assert all(x.startswith("+") for x in created[3:]) and "+  command: echo hi" in created
    assert diff_lines(Change(m, dict(m.spec))) == []


# -- apply, diff and export against an in-memory API ---------------------------------------


class FakeApi:
    """Jobs by ``namespace/name``; PUT stores the normalized body, as the server does."""

    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str]] = []
        self.keep: set[str] = set()  # fields a PUT leaves as they were

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/workflows":  # export asks for workflows too: none here
            return httpx.Response(200, json={"items": []})
        path = request.url.path.removeprefix("/api/v1/jobs")
        self.requests.append((request.method, path))
        if request.method == "GET" and path == "":
            return httpx.Response(200, json={"items": list(self.jobs.values())})
        ref = path.strip("/")
        if request.method == "GET":
            if ref not in self.jobs:
                return httpx.Response(
                    404, json={"error": {"code": "not_found", "message": f"no job {ref}"}}
                )
            return httpx.Response(200, json=self.jobs[ref])
        if request.method == "PUT":
            created = ref not in self.jobs
            old = self.jobs.get(ref, {})
            new = server_job(json.loads(request.content), len(self.jobs) + 1)
            self.jobs[ref] = {**new, **{k: old[k] for k in self.keep if k in old}}
            return httpx.Response(201 if created else 200, json=self.jobs[ref])
        return httpx.Response(405)

    def client(self) -> Client:
        return Client("http://herder.test", transport=httpx.MockTransport(self.handle))

    def puts(self) -> list[str]:
        return [path for method, path in self.requests if method == "PUT"]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    api = FakeApi()
    monkeypatch.setattr(apply_cmd, "connect", lambda ctx, server: api.client())
    yield api


def herder(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_apply_creates_then_sends_nothing_when_unchanged(fake: FakeApi, tmp_path: Path) -> None:
    f = write(tmp_path / "jobs.yaml", f"{NIGHTLY}---\n{HELLO}")

    first = herder("apply", "-f", str(f))
    assert first.exit_code == 0, first.output
    assert first.stdout == "job ops/nightly created\njob default/hello created\n"
    assert fake.puts() == ["/ops/nightly", "/default/hello"]

    fake.requests.clear()
    again = herder("apply", "-f", str(f))
    assert again.stdout == "job ops/nightly unchanged\njob default/hello unchanged\n"
    assert fake.puts() == []


def test_apply_reports_updated_only_for_what_changed(fake: FakeApi, tmp_path: Path) -> None:
    f = write(tmp_path / "jobs.yaml", f"{NIGHTLY}---\n{HELLO}")
    herder("apply", "-f", str(f))
    write(f, f"{NIGHTLY.replace('timeout: 1h', 'timeout: 60m30s')}---\n{HELLO}")

    diffed = herder("diff", "-f", str(f))
    assert diffed.exit_code == 1
    assert "-  timeout: 1h\n+  timeout: 1h30s\n" in diffed.stdout
    applied = herder("-o", "json", "apply", "-f", str(f))
    assert [i["result"] for i in json.loads(applied.stdout)["items"]] == ["updated", "unchanged"]
    assert herder("diff", "-f", str(f)).exit_code == 0


def test_a_same_meaning_spelled_differently_is_unchanged(fake: FakeApi, tmp_path: Path) -> None:
    herder("apply", "-f", str(write(tmp_path / "a.yaml", NIGHTLY)))
    respelled = NIGHTLY.replace("timeout: 1h", "timeout: 3600").replace("10s", "10000ms")
    fake.requests.clear()
    result = herder("apply", "-f", str(write(tmp_path / "a.yaml", respelled)))
    assert result.stdout == "job ops/nightly unchanged\n"
    assert fake.puts() == []


def test_what_the_server_answers_decides_updated_or_unchanged(fake: FakeApi) -> None:
    [m] = read_manifests_text(HELLO)
    fake.jobs["default/hello"] = {**server_job(m.body), "description": "the server's own"}
    fake.keep = {"description"}  # as if the server normalized it otherwise than this CLI
    with fake.client() as api:
        [change] = plan(api, [m])
        assert change.action == "update"
        assert apply_change(api, change) == "unchanged"  # sent, but nothing changed
        fake.keep = set()
        assert apply_change(api, change) == "updated"
        assert fake.puts() == ["/default/hello", "/default/hello"]


def test_one_bad_document_and_nothing_is_sent(fake: FakeApi, tmp_path: Path) -> None:
    write(tmp_path / "a.yaml", NIGHTLY)
    write(tmp_path / "b.yaml", f"{HELLO}---\nkind: Workflow\n")

    result = herder("apply", "-f", str(tmp_path))

    assert result.exit_code == 2
    assert f"{tmp_path / 'b.yaml'}: document 2 (line 6): apiVersion: missing" in result.output
    assert "nothing was applied" in result.output
    assert fake.requests == []
    assert herder("diff", "-f", str(tmp_path)).exit_code == 2


def test_diff_exits_2_when_the_server_cannot_be_asked(tmp_path: Path) -> None:
    f = write(tmp_path / "a.yaml", HELLO)
    result = herder("--server", "http://127.0.0.1:9", "diff", "-f", str(f))
    assert result.exit_code == 2
    assert "cannot reach" in result.output


def test_apply_needs_a_file() -> None:
    assert herder("apply").exit_code == 2
    assert herder("apply", "-f", "-", "-f", "-").exit_code == 2


def test_export_stream_and_folder_reapply_unchanged(fake: FakeApi, tmp_path: Path) -> None:
    herder("apply", "-f", str(write(tmp_path / "in.yaml", f"{NIGHTLY}---\n{HELLO}")))

    stream = herder("export")
    assert stream.exit_code == 0
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(stream.stdout)] == [
        "hello", "nightly"
    ]
    out = tmp_path / "out"
    assert herder("export", "-o", str(out)).exit_code == 0
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.yaml")) == [
        "default/job-hello.yaml", "ops/job-nightly.yaml"
    ]
    fake.requests.clear()
    again = herder("apply", "-f", str(out))
    assert again.stdout == "job default/hello unchanged\njob ops/nightly unchanged\n"
    assert fake.puts() == []


def test_export_refuses_an_output_format_for_a_folder(fake: FakeApi) -> None:
    result = herder("export", "-o", "json")
    assert result.exit_code == 2
    assert "./json" in result.output


def test_export_writes_no_unsafe_file_names(tmp_path: Path) -> None:
    bad = {"apiVersion": "herder/v1", "kind": "Job",
           "metadata": {"name": "../../etc", "namespace": "default"}, "spec": {}}
    with pytest.raises(CliError, match="not a safe file name"):
        write_tree(tmp_path, [bad])
    assert list(tmp_path.iterdir()) == []


def test_export_replaces_a_symlink_instead_of_writing_through_it(tmp_path: Path) -> None:
    victim = write(tmp_path / "victim.txt", "keep me")
    (tmp_path / "out" / "default").mkdir(parents=True)
    (tmp_path / "out" / "default" / "job-hello.yaml").symlink_to(victim)
    [m] = read_manifests_text(HELLO)
    write_tree(tmp_path / "out", [to_manifest(m.spec)])
    assert victim.read_text() == "keep me"
    assert "echo hi" in (tmp_path / "out" / "default" / "job-hello.yaml").read_text()


def test_namespace_manifests_come_first(tmp_path: Path) -> None:
    path = write(tmp_path / "m.yaml",
                 "apiVersion: herder/v1\nkind: Job\nmetadata: {name: a, namespace: ops}\n"
                 "spec: {command: x}\n---\napiVersion: herder/v1\nkind: Namespace\n"
                 "metadata: {name: ops}\n")
    found = read_manifests([str(path)])
    assert [(m.kind, m.ref) for m in found] == [("Namespace", "ops"), ("Job", "ops/a")]
    bad = write(tmp_path / "bad.yaml",
                "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: Ops}\n---\n"
                "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: x, labels: {}}\n---\n"
                "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: y}\nspec: {a: 1}\n---\n"
                "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: z}\n"
                "spec: {retention: {max_runs: 0}}\n")
    assert [p.split(": ", 2)[2] for p in problems(bad)] == [
        "metadata.name: 'Ops' is not a valid name; use lowercase letters, digits and '-', "
        "starting with a letter and not ending with '-'",
        "metadata.labels: a Namespace has only a name",
        "spec.a: a Namespace's spec holds only retention",
        "spec.retention.max_runs: must be a whole number from 1 to 10000000",
    ]


def test_a_namespace_manifest_may_carry_its_retention(tmp_path: Path) -> None:
    path = write(tmp_path / "ns.yaml",
                 "apiVersion: herder/v1\nkind: Namespace\nmetadata: {name: ops}\n"
                 "spec: {retention: {max_age: 2160h, max_runs: 500}}\n")
    [found] = read_manifests([str(path)])
    assert found.spec == {"name": "ops", "retention": {"max_age": "90d", "max_runs": 500}}
    assert found.body == found.spec
