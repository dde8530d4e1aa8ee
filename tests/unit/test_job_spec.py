"""Job spec rules: names, durations, params, env, labels, commands and their templates."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from herder.model import jobs as rules
from herder.model.durations import format_duration, parse_duration
from herder.model.errors import InvalidSpec
from herder.model.jobs import JobSpec, merge_params, render_command


@given(st.from_regex(rules.NAME_RE, fullmatch=True))
def test_valid_names_are_accepted(name: str) -> None:
    assert rules.check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "A", "1abc", "-a", "a-", "a_b", "a/b", "../x", "a.b", "a" * 64, "ä"]
)
def test_bad_names_are_refused(name: str) -> None:
    with pytest.raises(InvalidSpec):
        rules.check_name(name)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("1h", 3600), ("1h30m", 5400), ("250ms", 0.25), ("2d", 172800), (300, 300),
     ("300", 300), (1.5, 1.5)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-5", -5, 0, "0s", "1x", "h", "1h 30m", True, "nan", "999d"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InvalidSpec):
        parse_duration(text)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=366 * 86400))
def test_format_duration_round_trips(seconds: int) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("name", ["path", "ld_preload", "LD_LIBRARY_PATH", "herder_x", "BASH_ENV",
                                  "1x", "a-b", "", "x" * 65])
def test_param_names_that_are_refused(name: str) -> None:
    with pytest.raises(InvalidSpec):
        rules.check_params({name: "v"})


def test_param_names_differing_only_by_case_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="differ only by case"):
        rules.check_params({"db": "a", "DB": "b"})


def test_runtime_env_may_not_set_reserved_variables() -> None:
    with pytest.raises(InvalidSpec):
        rules.check_env({"LD_PRELOAD": "/x.so"}, allow_reserved=False)
    assert rules.check_env({"PATH": "/opt/bin"}, allow_reserved=True) == {"PATH": "/opt/bin"}
    with pytest.raises(InvalidSpec):
        rules.check_env({"HERDER_RUN_ID": "1"}, allow_reserved=True)


def test_unknown_runtime_params_are_refused() -> None:
    with pytest.raises(InvalidSpec, match="unknown param 'nope'"):
        merge_params({"db": "sales"}, {"nope": 1})
    assert merge_params({"db": "sales"}, {"db": "hr"}) == {"db": "hr"}


def _spec(command: list[str] | str) -> JobSpec:
    return JobSpec(name="j", command=rules.check_command(command))


def test_argv_templates_need_no_quoting() -> None:
    argv = render_command(_spec(["echo", "{{ params.x }}"]), {"params": {"x": "a; rm -rf /"}})
    assert argv == ["echo", "a; rm -rf /"]


def test_shell_templates_must_quote_params() -> None:
    spec = _spec("echo {{ params.x }}")
    with pytest.raises(InvalidSpec, match="shell_quote"):
        render_command(spec, {"params": {"x": "$(reboot)"}})
    quoted = render_command(_spec("echo {{ params.x | shell_quote }}"),
                            {"params": {"x": "$(reboot)"}})
    assert quoted == ["/bin/sh", "-c", "echo '$(reboot)'"]


@pytest.mark.parametrize(
    "template",
    ["{{ ''.__class__.__mro__ }}", "{{ params.__class__ }}",
     "{% for i in range(10**9) %}{% endfor %}", "{{ 'x' * 10**9 }}", "{{ 9 ** 9 ** 9 }}",
     "{{ unknown }}", "{{ params.x.__init__ }}"],
)
def test_template_attacks_are_refused(template: str) -> None:
    with pytest.raises(InvalidSpec):
        render_command(_spec([template]), {"params": {"x": "a"}})


@given(st.lists(st.text(alphabet=string.printable, max_size=30), min_size=1, max_size=5))
def test_plain_argv_passes_through(argv: list[str]) -> None:
    argv = [a.replace("{", "") or "x" for a in argv]
    assert render_command(_spec(argv), {"params": {}}) == argv
