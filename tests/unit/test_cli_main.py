"""The CLI without a server: parsing, help, exit-code rules, rendering, ``herder server``."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from typer.testing import CliRunner

from herder import __version__
from herder.cli import render
from herder.cli.client import CliError, job_path, normalize_url
from herder.cli.common import exit_code_for, is_terminal
from herder.cli.jobs import from_manifest
from herder.cli.main import app
from herder.cli.render import Output
from herder.settings import Settings

runner = CliRunner()
AT = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def text_of(renderable: Any, width: int = 120) -> str:
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


# -- exit codes -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("run", "expected"),
    [
        ({"status": "SUCCESS", "exit_code": 0}, 0),
        ({"status": "APP_ERROR", "exit_code": 3}, 3),
        ({"status": "APP_ERROR", "exit_code": -9}, 137),  # killed by SIGKILL
        ({"status": "APP_ERROR", "exit_code": 0}, 1),  # a failure never exits 0
        ({"status": "APP_ERROR", "exit_code": 300}, 1),
        ({"status": "APP_ERROR", "exit_code": None}, 1),
        ({"status": "TIMEOUT", "exit_code": 143}, 124),
        ({"status": "PROC_ERROR", "exit_code": None}, 125),
        ({"status": "ABORTED", "exit_code": None}, 130),
        ({"status": "SKIPPED", "exit_code": None}, 1),
        ({"status": "SOMETHING_NEW", "exit_code": None}, 1),
    ],
)
def test_exit_code_for(run: dict[str, Any], expected: int) -> None:
    assert exit_code_for(run) == expected


def test_terminal_is_code_400_or_more_or_a_terminal_name() -> None:
    assert is_terminal({"status": "NEW_END", "status_code": 460})
    assert not is_terminal({"status": "RUNNING", "status_code": 300})
    assert is_terminal({"status": "TIMEOUT"})
    assert not is_terminal({"status": "PENDING"})


# -- help, version, usage ---------------------------------------------------------------------


def test_help_documents_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])

    assert result.exit_code == 0
    for code in ("124", "125", "130"):
        assert code in result.stdout
    assert "--install-completion" in result.stdout


def test_server_help_lists_every_setting_as_an_environment_variable() -> None:
    result = runner.invoke(app, ["server", "--help"])

    assert result.exit_code == 0
    for name, field in Settings.model_fields.items():
        assert f"HERDER_{name.upper()}" in result.stdout
        assert str(field.description)[:30] in result.stdout
    assert "(default: 4004)" in result.stdout


def test_version() -> None:
    assert runner.invoke(app, ["--version"]).stdout == f"herder {__version__}\n"
    assert runner.invoke(app, ["version"]).stdout == f"herder {__version__}\n"


def test_an_unknown_command_is_a_usage_error() -> None:
    assert runner.invoke(app, ["frobnicate"]).exit_code == 2


def test_a_bad_server_url_is_a_usage_error() -> None:
    result = runner.invoke(app, ["--server", "ftp://example.org", "runs"])

    assert result.exit_code == 2
    assert "not a server URL" in result.stderr


def test_python_dash_m_herder_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "herder", "--version"], capture_output=True, text=True, check=False
    )
    assert (done.returncode, done.stdout) == (0, f"herder {__version__}\n")


# -- herder server ----------------------------------------------------------------------------


@pytest.fixture
def fake_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Settings]:
    """A stand-in ``herder.server`` that records the settings it is served with."""
    served: list[Settings] = []
    module = types.ModuleType("herder.server")
    module.serve = served.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "herder.server", module)
    monkeypatch.chdir(tmp_path)  # no stray .env
    return served


def test_server_options_override_the_environment(fake_server: list[Settings]) -> None:
    env = {"HERDER_PORT": "5000", "HERDER_HOST": "0.0.0.0", "HERDER_LOG_LEVEL": "debug"}

    result = runner.invoke(app, ["server", "--port", "6000", "--data-dir", "d"], env=env)

    assert result.exit_code == 0, result.output
    [settings] = fake_server
    assert (settings.host, settings.port, settings.data_dir) == ("0.0.0.0", 6000, Path("d"))
    assert settings.log_level == "debug"


def test_server_with_a_bad_setting_says_which(fake_server: list[Settings]) -> None:
    result = runner.invoke(app, ["server"], env={"HERDER_PORT": "many"})

    assert result.exit_code == 2
    assert "HERDER_PORT" in result.stderr
    assert fake_server == []


# -- parsing helpers ----------------------------------------------------------------------------


def test_urls_and_job_references() -> None:
    assert normalize_url("127.0.0.1:4004/") == "http://127.0.0.1:4004"
    assert normalize_url("https://h.example/herder") == "https://h.example/herder"
    assert job_path("ops/backup", "runs") == "/api/v1/jobs/ops/backup/runs"
    assert job_path("12") == "/api/v1/jobs/12"
    for bad in ("", "a/b/c", "../x", "a/"):
        with pytest.raises(CliError) as caught:
            job_path(bad)
        assert caught.value.exit_code == 2


def test_a_manifest_becomes_the_json_form() -> None:
    manifest = {
        "apiVersion": "herder/v1",
        "kind": "Job",
        "metadata": {"name": "x", "namespace": "ops", "annotations": {"a": "b"}},
        "spec": {"command": "true", "enabled": False},
    }
    assert from_manifest(manifest, where="f") == {
        "command": "true",
        "enabled": False,
        "name": "x",
        "namespace": "ops",
        "annotations": {"a": "b"},
    }
    with pytest.raises(CliError, match="not a Job"):
        from_manifest({"kind": "Workflow"}, where="f")


# -- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-01-01T11:59:57Z", "3s ago"),
        ("2026-01-01T11:55:00+00:00", "5m ago"),
        ("2026-01-01T09:00:00", "3h ago"),  # naive means UTC
        ("2025-12-30T12:00:00Z", "2d ago"),
        ("2026-01-01T12:10:00Z", "in 10m"),
        ("2026-01-01T12:00:00Z", "just now"),
        (None, "-"),
        ("not a time", "-"),
    ],
)
def test_relative_times(value: Any, expected: str) -> None:
    assert render.relative(value, at=AT) == expected


def test_old_times_are_local_dates() -> None:
    assert render.relative("2025-06-01T00:00:00Z", at=AT).startswith("2025-")


def test_durations() -> None:
    assert render.elapsed(0.4) == "0.40s"
    assert render.elapsed(12.34) == "12.3s"
    assert render.elapsed(245) == "4m05s"
    assert render.elapsed(7380) == "2h03m"
    running = {"started_at": "2026-01-01T11:59:50Z", "finished_at": None}
    assert render.run_duration(running, at=AT) == "10.0s…"
    assert render.run_duration({"started_at": None}, at=AT) == "-"


@pytest.mark.parametrize(
    ("status", "style"),
    [
        ("SUCCESS", "green"),
        ("APP_ERROR", "red"),
        ("PROC_ERROR", "red"),
        ("TIMEOUT", "red"),
        ("ABORTED", "yellow"),
        ("SKIPPED", "dim yellow"),
        ("RUNNING", "cyan"),
        ("READY", "blue"),
    ],
)
def test_status_colours(status: str, style: str) -> None:
    assert render.status_text(status).style == style


def test_runs_table_fits_a_narrow_terminal() -> None:
    run = {
        "id": 12345,
        "job": "a-rather-long-namespace/with-a-very-long-job-name-indeed",
        "status": "APP_ERROR",
        "exit_code": 3,
        "trigger": "schedule",
        "created_at": "2026-01-01T11:59:00Z",
        "started_at": "2026-01-01T11:59:00Z",
        "finished_at": "2026-01-01T11:59:02Z",
    }
    text = text_of(render.runs_table([run], at=AT), width=60)

    assert all(len(line) <= 60 for line in text.splitlines())
    assert "APP_ERROR" in text
    assert "1m ago" in text


def test_job_panel_shows_the_spec_as_yaml() -> None:
    job = {
        "id": 3,
        "ref": "ops/backup",
        "name": "backup",
        "namespace": "ops",
        "command": ["pg_dump", "sales"],
        "timeout": 3600.0,
        "enabled": True,
        "created_at": "2026-01-01T11:00:00Z",
        "run_count": 2,
    }
    text = text_of(render.job_panel(job, [], at=AT))

    assert "ops/backup" in text
    assert "- pg_dump" in text
    assert "timeout: 1h" in text
    assert "no runs yet" in text


def test_dump_json_and_yaml() -> None:
    data = {"id": 1, "name": "é", "labels": {"a": "b"}}
    assert json.loads(render.dump(data, Output.JSON)) == data
    assert '"name": "é"' in render.dump(data, Output.JSON)
    assert render.dump(data, Output.YAML) == "id: 1\nname: é\nlabels:\n  a: b\n"
