"""Templates with ``vars`` and ``secrets``: what they render, what they name, and every attack
refused with a clear error (``ATTACKS`` is the list the docs count)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from herder.model import jobs as rules
from herder.model import templates
from herder.model.errors import InvalidSpec
from herder.model.jobs import JobSpec, check_renders, references, render_run
from herder.model.templates import Scope
from herder.model.variables import Values


def _context(**values: Any) -> dict[str, Any]:
    return {
        "params": {"x": "a b", "n": 3},
        "run": {"id": 7, "attempt": 1, "scheduled_for": ""},
        "job": {"name": "j", "namespace": "ops"},
        **Values(namespace="ops", vars={"host": "db1", "port": "5432"},
                 secrets={"pw": "s3cret-value"}).context(),
        **values,
    }


def _render(text: str, *, shell: bool = False) -> str:
    return templates.render(text, _context(), shell=shell)


# (template, words the error must contain). Each is refused at compile time or while rendering,
# within a bounded time and memory.
ATTACKS: list[tuple[str, str]] = [
    ("{{ ''.__class__.__mro__ }}", "starting with '_'"),
    ("{{ ''.__class__.__mro__[1].__subclasses__() }}", "calls"),
    ("{{ params.__class__ }}", "starting with '_'"),
    ("{{ run.__init__.__globals__ }}", "starting with '_'"),
    ("{{ job['__builtins__'] }}", "has no attribute"),
    ("{{ job['__class__'] }}", "unsafe"),
    ("{{ params|attr('__class__') }}", "No filter named 'attr'"),
    ("{{ vars.__class__ }}", "starting with '_'"),
    ("{{ secrets.pw.__class__ }}", "starting with '_'"),
    ("{{ cycler }}", "'cycler' is undefined"),
    ("{{ joiner }}", "'joiner' is undefined"),
    ("{{ namespace }}", "'namespace' is undefined"),
    ("{{ lipsum }}", "'lipsum' is undefined"),
    ("{{ lipsum(10**9) }}", "calls"),
    ("{{ range(10**9) }}", "calls"),
    ("{% for i in range(10**9) %}{% endfor %}", "loops"),
    ("{% for a in 'x' * 1000 %}{% for b in 'x' * 1000 %}{{ a }}{% endfor %}{% endfor %}",
     "loops"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "macros"),
    ("{% call f() %}{% endcall %}", "macros"),
    ("{% include 'x' %}", "{% include %}"),
    ("{% import 'x' as x %}", "{% import %}"),
    ("{% from 'x' import y %}", "{% import %}"),
    ("{% extends 'x' %}", "{% extends %}"),
    ("{% block b %}{% endblock %}", "{% block %}"),
    ("{{ self }}", "'self'"),
    ("{{ self._TemplateReference__context }}", "'self'"),
    ("{{ config }}", "'config' is undefined"),
    ("{{ request }}", "'request' is undefined"),
    ("{{ env.HOME }}", "'env' is undefined"),
    ("{{ environ }}", "'environ' is undefined"),
    ("{{ '{0.__class__}'.format(params) }}", "calls"),
    ("{{ '%s' % params }}", "% is not allowed"),
    ("{{ '%0999999999d' % 1 }}", "% is not allowed"),
    ("{{ 'a'.center(10**9) }}", "calls"),
    ("{{ 'a'|center(10**9) }}", "No filter named 'center'"),
    ("{{ 'a'|indent(10**9) }}", "No filter named 'indent'"),
    ("{{ 'a'|format(1) }}", "No filter named 'format'"),
    ("{{ 'x' * 10**9 }}", "too large"),
    ("{{ [1] * 10**9 }}", "too large"),
    ("{{ 9 ** 9 ** 9 }}", "exponent too large"),
    ("{{ 'x' * 200000 + 'x' * 200000 + 'x' * 200000 + 'x' * 200000 + 'x' * 200000 }}",
     "builds more than"),
    ("{{ ('x' * 200000) | shell_quote }}{{ ('x' * 200000) | shell_quote }}",
     "larger than 256 KiB"),
    ("{{ 'a' ~ 'b' }}", "'~'"),
    ("{% set x = 1 %}", "{% set %}"),
    ("{% set x %}y{% endset %}", "{% set %}"),
    ("{% with x = 1 %}{% endwith %}", "{% with %}"),
    ("{% filter upper %}{{ secrets.pw }}{% endfilter %}", "{% filter %}"),
    ("{{ secrets }}", "name secrets literally"),
    ("{{ vars }}", "name vars literally"),
    ("{{ secrets[params.x] }}", "name secrets literally"),
    ("{{ secrets.pw | upper }}", "may only be written as"),
    ("{{ secrets.pw[0] }}", "may only be written as"),
    ("{{ secrets.pw if true }}", "may only be written as"),
    ("{% if secrets.pw == 'a' %}{% endif %}", "may only be written as"),
    ("{{ secrets.nope }}", "secret 'nope' is not defined"),
    ("{{ vars.nope }}", "variable 'nope' is not defined in namespace 'ops' or globally"),
    ("{{ vars['items'] }}", "variable 'items' is not defined"),
    ("{{ unknown }}", "'unknown' is undefined"),
    ("{{ x", "template error"),
    ("{{ " + "(" * 500 + "1" + ")" * 500 + " }}", "nested too deeply"),
    ("{{ params.x | lower(5) }}", "takes 1 positional argument"),
    ("{{ params.x - 1 }}", "unsupported operand"),
    ("{{ {[]: 1} }}", "unhashable"),
]


def test_the_attack_count() -> None:
    assert len(ATTACKS) == 63


@pytest.mark.parametrize(("template", "reason"), ATTACKS, ids=[a[:60] for a, _ in ATTACKS])
def test_attacks_are_refused(template: str, reason: str) -> None:
    started = time.monotonic()
    for shell in (False, True):
        with pytest.raises(InvalidSpec, match="template error") as caught:
            _render(template, shell=shell)
        assert reason in caught.value.message
    assert time.monotonic() - started < 2


def test_vars_and_secrets_render() -> None:
    assert _render("{{ vars.host }}:{{ vars['port'] }}") == "db1:5432"
    assert _render("--password={{ secrets.pw }}") == "--password=s3cret-value"
    assert _render("{{ vars.host | upper }}") == "DB1"


def test_in_a_shell_string_values_must_be_quoted() -> None:
    with pytest.raises(InvalidSpec, match="unquoted"):
        _render("echo {{ vars.host }}", shell=True)
    with pytest.raises(InvalidSpec, match="unquoted"):
        _render("echo {{ secrets.pw }}", shell=True)
    assert _render("echo {{ secrets.pw | shell_quote }} {{ params.n }}",
                   shell=True) == "echo s3cret-value 3"


def test_references_name_what_is_used() -> None:
    refs = templates.references("{{ vars.a }} {{ secrets['b'] }} {{ params.c | upper }}")
    assert refs.vars == {"a"} and refs.secrets == {"b"} and refs.params_changed == {"c"}
    assert templates.references("plain text") == templates.NO_REFS


def _spec(**fields: Any) -> JobSpec:
    return JobSpec(name="j", namespace="ops", **fields)


def test_a_job_names_its_values_in_command_env_and_params() -> None:
    spec = _spec(command=["run", "{{ vars.a }}"], env={"E": "{{ secrets.b }}"},
                 params={"p": "{{ vars.c }}"})
    refs = references(spec)
    assert refs.vars == {"a", "c"} and refs.secrets == {"b"}


def test_a_param_holding_a_secret_is_written_as_it_is() -> None:
    holding = {"pw": "{{ secrets.pw }}"}
    check_renders(_spec(command=["x", "{{ params.pw }}"], params=holding))
    for command in (["x", "{{ params.pw | upper }}"], ["x", "{{ params['pw'][1:] }}"],
                    ["x", "{{ params }}"]):
        with pytest.raises(InvalidSpec, match="holds a secret"):
            check_renders(_spec(command=command, params=holding))
    with pytest.raises(InvalidSpec, match="holds a secret"):
        check_renders(_spec(command=["x"], env={"E": "{{ params.pw | lower }}"}, params=holding))


def test_render_run_renders_defaults_but_not_given_values() -> None:
    spec = _spec(command=["echo", "{{ params.p }}", "{{ params.q }}"],
                 env={"E": "{{ params.p }}-{{ vars.host }}"},
                 params={"p": "{{ secrets.pw }}", "q": "plain"})
    context = {k: v for k, v in _context().items() if k != "params"}
    argv, env, params = render_run(spec, {"p": "{{ secrets.pw }}", "q": "{{ vars.host }}"},
                                   context)
    assert argv == ["echo", "s3cret-value", "{{ vars.host }}"]
    assert env == {"E": "s3cret-value-db1"}
    assert params == {"p": "s3cret-value", "q": "{{ vars.host }}"}


def test_param_defaults_cannot_name_params() -> None:
    with pytest.raises(InvalidSpec, match="'params' is undefined"):
        check_renders(_spec(command=["x"], params={"a": "1", "b": "{{ params.a }}"}))


def test_job_env_templates_are_checked_when_saved() -> None:
    with pytest.raises(InvalidSpec, match=r"env\.E: template error"):
        rules.check_env({"E": "{{ ''.__class__ }}"}, allow_reserved=True)
    # Overrides given for one run are plain values.
    assert rules.check_env({"E": "{{ x"}, allow_reserved=False) == {"E": "{{ x"}


def test_the_scope_shows_nothing_but_its_values() -> None:
    scope = Scope("secret", {"a": "1"})
    with pytest.raises(InvalidSpec, match="secret 'keys' is not defined"):
        scope.lookup("keys")


@pytest.mark.parametrize(("expression", "reason"), [
    ("''.__class__", "attributes starting with '_'"),
    ("range(10**9)", "calls"),
    ("'a' * 10**7", "too large"),
    ("self", "'self'"),
])
def test_a_foreach_expression_follows_the_template_rules(expression: str, reason: str) -> None:
    """A workflow's ``foreach`` is evaluated as a value, not rendered: the same rules hold."""
    with pytest.raises(InvalidSpec) as refused:
        templates.evaluate(expression, {"steps": {}})
    assert reason in refused.value.message


def test_a_foreach_expression_answers_its_value() -> None:
    steps = {"extract": {"outputs": {"files": ["a.csv", "b.csv"]}}}
    assert templates.evaluate("steps.extract.outputs.files", {"steps": steps}) == ["a.csv",
                                                                                  "b.csv"]
