"""Rendering ``{{ params.x }}`` in commands, safely.

Templates run in Jinja2's sandbox (no attribute escapes, no file access, no globals beyond the
context). A value reaches a *shell* command only through the ``shell_quote`` filter: in a shell
string, ``{{ params.db }}`` is refused and ``{{ params.db | shell_quote }}`` is what works. In an
argv list each element is one argument, so no quoting is needed there and none is applied.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herder.model.errors import InvalidSpec

MAX_RENDERED = 256 * 1024
TOO_DEEP = "template error: nested too deeply"


class Quoted(str):
    """A string already quoted for a POSIX shell by ``shell_quote``."""

    __slots__ = ()


def shell_quote(value: object) -> Quoted:
    return Quoted(shlex.quote(_text(value)))


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _finalize_shell(value: object) -> str:
    if isinstance(value, Quoted):
        return value
    if isinstance(value, str | int | float | bool) or value is None:
        # A literal number is harmless; anything else from the context must be quoted.
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        raise _Unquoted()
    raise _Unquoted()


class _Unquoted(Exception):
    pass


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with ``*`` and ``**`` bounded so ``{{ 'x' * 10**9 }}`` cannot eat memory."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (abs(_number(left)) > 1000 or abs(_number(right)) > 64):
            raise InvalidSpec("template error: exponent too large")
        if operator == "*":
            sizes = [len(v) if isinstance(v, str | list | tuple) else 1 for v in (left, right)]
            counts = [abs(v) if isinstance(v, int) else 1 for v in (left, right)]
            if max(sizes) * max(counts) > MAX_RENDERED:
                raise InvalidSpec("template error: result too large")
        return super().call_binop(context, operator, left, right)


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _environment(shell: bool) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize_shell if shell else _text,
        keep_trailing_newline=True,
    )
    env.filters["shell_quote"] = shell_quote
    env.globals.clear()
    return env


_ARGV_ENV = _environment(shell=False)
_SHELL_ENV = _environment(shell=True)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=1024)
def _compile(text: str, shell: bool) -> Any:
    env = _SHELL_ENV if shell else _ARGV_ENV
    try:
        parsed = env.parse(text)
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
    # Loops over huge ranges are the classic way to hang a renderer: no loops in commands.
    try:
        loops = any(True for _ in parsed.find_all((nodes.For, nodes.Macro, nodes.CallBlock)))
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
    if loops:
        raise InvalidSpec("template error: loops and macros are not allowed in commands")
    try:
        return env.from_string(text)
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (RecursionError, SyntaxError):  # Python's own limits on nesting, in the compiled code
        raise InvalidSpec(TOO_DEEP) from None


def check(text: str, *, shell: bool) -> None:
    """Refuse a template that does not parse (called when a job is saved)."""
    if is_template(text):
        _compile(text, shell)


def render(text: str, context: Mapping[str, Any], *, shell: bool) -> str:
    """Render one command element; raise ``InvalidSpec`` with the reason if it cannot be."""
    if not is_template(text):
        return text
    template = _compile(text, shell)
    try:
        result: str = template.render(**context)
    except _Unquoted:
        raise InvalidSpec(
            "template error: a value is used unquoted in a shell command; "
            "write {{ params.NAME | shell_quote }} or give the command as an argv list"
        ) from None
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (ArithmeticError, MemoryError, OverflowError) as exc:
        raise InvalidSpec(f"template error: {exc.__class__.__name__}") from exc
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
    if len(result) > MAX_RENDERED:
        raise InvalidSpec("template error: the rendered command is larger than 256 KiB")
    return result


def _chain(node: nodes.Node) -> tuple[str, ...] | None:
    """``steps.extract.outputs.rows`` (or ``steps['extract']``) as its names, or None."""
    if isinstance(node, nodes.Name):
        return (node.name,)
    if isinstance(node, nodes.Getattr):
        inner = _chain(node.node)
        return None if inner is None else (*inner, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        inner = _chain(node.node)
        return None if inner is None else (*inner, str(node.arg.value))
    return None


def references(text: str, *, shell: bool) -> list[tuple[str, ...]]:
    """The names a template reads, each as its chain of attributes: ``{{ steps.a.outputs.b |
    shell_quote }}`` reads ``("steps", "a", "outputs", "b")``. Lets a caller check, before
    anything runs, that every name will exist."""
    if not is_template(text):
        return []
    _compile(text, shell)  # refuses what does not parse, or loops
    parsed = (_SHELL_ENV if shell else _ARGV_ENV).parse(text)
    found: list[tuple[str, ...]] = []

    def visit(node: nodes.Node) -> None:
        chain = _chain(node)
        if chain is not None:
            found.append(chain)
            return
        for child in node.iter_child_nodes():
            visit(child)

    try:
        visit(parsed)
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
    return found


@lru_cache(maxsize=256)
def _expression(source: str) -> Any:
    try:
        return _ARGV_ENV.compile_expression(source, undefined_to_none=False)
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (RecursionError, SyntaxError):
        raise InvalidSpec(TOO_DEEP) from None


def evaluate(source: str, context: Mapping[str, Any]) -> Any:
    """The value of one sandboxed expression (``steps.extract.outputs.files``), as it is: a
    list stays a list, where ``render`` would give its text."""
    expression = _expression(source)
    try:
        return expression(**context)
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (ArithmeticError, MemoryError, OverflowError) as exc:
        raise InvalidSpec(f"template error: {exc.__class__.__name__}") from exc
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
