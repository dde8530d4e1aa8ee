"""Job chains in the model: ``after`` as written and refused, conditions, what a follower gets."""

from __future__ import annotations

import pytest

from herder.api.schemas import JobIn
from herder.model.chains import Follow, chained_params, holds, parse_after
from herder.model.errors import InvalidSpec
from herder.model.jobs import JobSpec
from herder.model.runs import RunStatus


def _after(value: object) -> tuple[Follow, ...]:
    return parse_after(value, namespace="data", name="load")


def test_the_short_and_the_long_form() -> None:
    found = _after(["extract", {"job": "ops/clean", "on": "always"}, {"job": "b", "on": "failure"}])
    assert [f.to_dict() for f in found] == [
        {"job": "extract", "on": "success"},
        {"job": "ops/clean", "on": "always"},
        {"job": "b", "on": "failure"},
    ]
    assert found[0].refers_to("data") == ("data", "extract")
    assert found[1].refers_to("data") == ("ops", "clean")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([{"job": "a", "on": "sometimes"}],
         "after[0].on: 'sometimes' is not one of success, failure, always"),
        (["a", {"job": "data/a", "on": "failure"}],
         "after[1].job: data/a is followed already (after[0])"),
        (["load"], "after[0].job: a job cannot follow itself (data/load)"),
        (["data/load"], "after[0].job: a job cannot follow itself (data/load)"),
        ([{"job": "a", "when": "x"}], "after[0]: unknown field 'when'"),
        ([{"on": "success"}], "after[0].job: missing"),
        ([3], "after[0]: expected {job: NAME, on: success|failure|always}"),
        (["Bad_Name"], "after[0].job: 'Bad_Name' is not a valid name"),
        ("extract", "after: expected a list"),
    ],
)
def test_refusals_name_the_path(value: object, message: str) -> None:
    with pytest.raises(InvalidSpec) as caught:
        _after(value)
    assert caught.value.message.startswith(message), caught.value.message


@pytest.mark.parametrize(
    ("status", "success", "failure", "always"),
    [
        (RunStatus.SUCCESS, True, False, True),
        (RunStatus.APP_ERROR, False, True, True),
        (RunStatus.PROC_ERROR, False, True, True),
        (RunStatus.TIMEOUT, False, True, True),
        (RunStatus.ABORTED, False, True, True),
        (RunStatus.SKIPPED, False, False, False),
        (RunStatus.RUNNING, False, False, False),
    ],
)
def test_conditions(status: RunStatus, success: bool, failure: bool, always: bool) -> None:
    assert (holds("success", status), holds("failure", status), holds("always", status)) == (
        success, failure, always
    )


def test_outputs_override_the_params_the_follower_declares() -> None:
    params = chained_params(
        {"rows": "0", "day": "today", "files": "", "kept": "k"},
        {"rows": 42, "files": ["a.csv", "b.csv"], "kept": None, "other": "x"},
    )
    assert params == {"rows": 42, "day": "today", "files": '["a.csv","b.csv"]', "kept": "k"}


def test_the_canonical_json_form_round_trips() -> None:
    body = JobIn.model_validate(
        {"name": "load", "namespace": "data", "command": ["load", "{{ upstream.outputs.rows }}"],
         "after": ["extract"]}
    )
    spec = body.to_spec()
    assert spec.to_dict()["after"] == [{"job": "extract", "on": "success"}]
    assert JobSpec.from_dict(spec.to_dict()) == spec


def test_upstream_in_templates_only_with_after() -> None:
    with pytest.raises(ValueError, match="'upstream' is known only to a job that follows"):
        JobIn.model_validate({"name": "load", "command": ["echo", "{{ upstream.id }}"]})
    # With after, a shell string must still quote what it takes from upstream.
    with pytest.raises(ValueError, match="unquoted in a shell command"):
        JobIn.model_validate({"name": "load", "command": "echo {{ upstream.outputs.rows }}",
                              "after": ["extract"]})
    JobIn.model_validate({"name": "load", "after": ["extract"],
                          "command": "echo {{ upstream.outputs.rows | shell_quote }}"})
