"""``herder workflow …`` and ``kind: Workflow`` manifests against a real server: the design's
manifest applies, applies again unchanged, exports, and the export applies unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.servers import Server

pytestmark = pytest.mark.acceptance

# The design's manifest, as written there (``on:`` unquoted), with the jobs and the nested
# workflow it refers to.
MANIFESTS = """\
apiVersion: herder/v1
kind: Workflow
metadata: {name: nightly-etl, namespace: data}
spec:
  schedule: {cron: "0 2 * * *", timezone: UTC}     # same schedule and policy fields as a job
  parallelism: 4
  params: {region: eu}
  steps:
    - name: extract
      job: extract-sales                            # run a job by reference…
      params: {region: "{{ params.region }}"}
    - name: transform                               # …or an inline command
      command: ["python", "transform.py", "--rows", "{{ steps.extract.outputs.rows }}"]
      needs: [extract]                              # short for [{step: extract, on: success}]
    - name: cleanup
      command: "rm -rf /tmp/etl-{{ run.id }}"
      needs: [{step: transform, on: always}]        # success | failure | always
    - name: ship
      approval: {message: "Publish today's numbers?"}
      needs: [transform]
    - name: per-file
      foreach: "{{ steps.extract.outputs.files }}"  # one step run per item
      parallelism: 10
      command: ["process", "{{ item }}"]
      needs: [extract]
    - name: downstream
      workflow: publish                             # a nested workflow
      needs: [ship]
  on_failure:
    - name: page-oncall
      command: ["notify", "etl failed"]
---
apiVersion: herder/v1
kind: Workflow
metadata: {name: publish, namespace: data}
spec:
  steps:
    - {name: upload, command: "true", timeout: 10m, retries: 2}
---
apiVersion: herder/v1
kind: Job
metadata: {name: extract-sales, namespace: data}
spec:
  command: ["extract", "{{ params.region }}"]
  params: {region: us}
"""


def test_the_design_manifest_applies_then_reports_unchanged_and_exports_back(
    shared_server: Server, tmp_path: Path
) -> None:
    f = tmp_path / "etl.yaml"
    f.write_text(MANIFESTS)

    applied = shared_server.cli("apply", "-f", str(f))
    assert applied.returncode == 0, applied.stderr
    # Jobs first, then workflows, a nested one before the workflow that runs it.
    assert applied.stdout == (
        "job data/extract-sales created\n"
        "workflow data/publish created\n"
        "workflow data/nightly-etl created\n"
    )
    stored = shared_server.client.get("/api/v1/workflows/data/nightly-etl").json()
    assert stored["steps"][2]["needs"] == [{"step": "transform", "on": "always"}]

    again = shared_server.cli("apply", "-f", str(f))
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("unchanged") == 3, again.stdout
    assert shared_server.cli("diff", "-f", str(f)).returncode == 0

    out = tmp_path / "export"
    exported = shared_server.cli("export", "-n", "data", "-o", str(out))
    assert exported.returncode == 0, exported.stderr
    written = sorted(p.name for p in (out / "data").iterdir())
    assert written == ["job-extract-sales.yaml", "workflow-nightly-etl.yaml",
                       "workflow-publish.yaml"]
    manifest = yaml.safe_load((out / "data" / "workflow-publish.yaml").read_text())
    assert manifest["kind"] == "Workflow" and "misfire" not in manifest["spec"]
    reapplied = shared_server.cli("apply", "-f", str(out))
    assert reapplied.returncode == 0, reapplied.stderr
    assert reapplied.stdout.count("unchanged") == 3, reapplied.stdout


def test_a_changed_step_shows_in_diff_and_applies_as_updated(
    shared_server: Server, tmp_path: Path
) -> None:
    f = tmp_path / "w.yaml"
    two = MANIFESTS.replace("namespace: data}", "namespace: data-two}")
    f.write_text(two)
    assert shared_server.cli("apply", "-f", str(f)).returncode == 0
    f.write_text(two.replace("parallelism: 4", "parallelism: 5"))
    diffed = shared_server.cli("diff", "-f", str(f))
    assert diffed.returncode == 1, diffed.stderr
    assert "--- server: workflow data-two/nightly-etl" in diffed.stdout
    assert "-  parallelism: 4\n+  parallelism: 5\n" in diffed.stdout
    applied = shared_server.cli("apply", "-f", str(f))
    assert "workflow data-two/nightly-etl updated" in applied.stdout


def test_bad_workflow_manifests_apply_nothing_and_say_where(
    shared_server: Server, tmp_path: Path
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(
        "apiVersion: herder/v1\nkind: Workflow\nmetadata: {name: w, namespace: bad}\n"
        "spec:\n  steps:\n    - {name: transform, command: 'true'}\n"
        "    - {name: load, command: 'true', needs: [transfrom]}\n"
        "---\n"
        "apiVersion: herder/v1\nkind: Workflow\nmetadata: {name: Bad}\nspec: {steps: []}\n"
    )
    result = shared_server.cli("apply", "-f", str(f))
    assert result.returncode == 2
    assert (f"{f}: document 1 (line 1): spec.steps[1].needs[0]: unknown step 'transfrom' "
            "(did you mean 'transform'?)") in result.stderr
    assert f"{f}: document 2 (line 9): metadata.name: 'Bad' is not a valid name" in result.stderr
    assert shared_server.client.get("/api/v1/workflows", params={"namespace": "bad"}).json()[
        "items"] == []
    missing = tmp_path / "missing.yaml"
    missing.write_text("apiVersion: herder/v1\nkind: Workflow\nmetadata: {name: m}\n"
                       "spec: {steps: [{name: x, job: nope}]}\n")
    refused = shared_server.cli("apply", "-f", str(missing))
    assert refused.returncode == 1
    assert "steps[0].job: no job default/nope" in refused.stderr


def test_workflow_commands_create_list_show_delete(shared_server: Server, tmp_path: Path) -> None:
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"name": "hello", "namespace": "cli", "steps": [
        {"name": "a", "command": ["echo", "hi"]},
        {"name": "b", "command": "true", "needs": [{"step": "a", "on": "always"}],
         "foreach": [1, 2], "parallelism": 1},
        {"name": "ok", "approval": {"message": "go?"}, "needs": ["b"]},
    ]}))
    created = shared_server.cli("workflow", "create", "-f", str(f))
    assert created.returncode == 0, created.stderr
    assert "created workflow cli/hello" in created.stderr

    listed = shared_server.cli("workflow", "list", "-n", "cli")
    assert "cli/hello" in listed.stdout and "3" in listed.stdout
    as_json = json.loads(shared_server.cli("workflow", "list", "-n", "cli", "-o", "json").stdout)
    assert [w["ref"] for w in as_json["items"]] == ["cli/hello"]

    shown = shared_server.cli("workflow", "show", "cli/hello")
    assert shown.returncode == 0, shown.stderr
    for text in ("└── a  echo hi", "b (always)  true  [foreach [1, 2] (1 at once)]",
                 "ok  approval: go?"):
        assert text in shown.stdout, shown.stdout
    assert json.loads(shared_server.cli("workflow", "show", "cli/hello", "-o", "json").stdout)[
        "name"] == "hello"

    disabled = shared_server.cli("workflow", "disable", "cli/hello")
    assert disabled.stdout == "workflow cli/hello disabled\n", disabled.stderr
    assert shared_server.client.get("/api/v1/workflows/cli/hello").json()["enabled"] is False
    assert shared_server.cli("workflow", "enable", "cli/hello").returncode == 0
    assert shared_server.client.get("/api/v1/workflows/cli/hello").json()["enabled"] is True

    again = shared_server.cli("workflow", "create", "-f", str(f))
    assert again.returncode == 1 and "already exists" in again.stderr
    deleted = shared_server.cli("workflow", "delete", "cli/hello", "--yes")
    assert deleted.returncode == 0 and "deleted workflow cli/hello" in deleted.stdout
    gone = shared_server.cli("workflow", "show", "cli/hello")
    assert gone.returncode == 1 and "no workflow with name cli/hello" in gone.stderr
