"""Rendering ``{{ params.x }}``, ``{{ vars.x }}`` and ``{{ secrets.x }}`` in commands, safely.

Templates run in Jinja2's sandbox (no attribute escapes, no file access, no globals beyond the
context). A value reaches a *shell* command only through the ``shell_quote`` filter: in a shell
string, ``{{ params.db }}`` is refused and ``{{ params.db | shell_quote }}`` is what works. In an
argv list each element is one argument, so no quoting is needed there and none is applied.

On top of the sandbox, a template is checked when it is compiled (so a job is refused when it
is saved, not when it runs) and bounded while it renders:

- no loops, macros, calls (so no ``range``, ``"{0.__class__}".format``, ``"a".center(10**9)``),
  no ``{% include %}``/``{% import %}``/``{% extends %}``, no ``{% set %}``, no ``self``, no
  attribute starting with ``_``, no ``~``, and only the filters in ``FILTERS``;
- ``*``, ``**``, ``+`` and ``%`` are checked before they run, and the text they build in one
  render is bounded (``MAX_BUILT``); the output is counted as it is produced (``MAX_RENDERED``);
- ``vars`` and ``secrets`` are named literally (``vars.NAME``, ``secrets["NAME"]``), so the
  names a template uses are known without rendering it (``references``) and only those values
  are loaded; a secret may only be output as it is (``{{ secrets.NAME }}``, or with
  ``| shell_quote``), so the text that reaches the run is the value itself and can be masked.
"""

from __future__ import annotations

import contextvars
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from herder.model.errors import InvalidSpec

MAX_RENDERED = 256 * 1024
TOO_DEEP = "template error: nested too deeply"
MAX_BUILT = 1024 * 1024  # text that operators may build in one render, in all
SCOPES = ("vars", "secrets")
FILTERS = ("shell_quote", "default", "d", "lower", "upper", "trim", "string", "int", "float",
           "length")

_FORBIDDEN: tuple[tuple[type[nodes.Node], str], ...] = (
    (nodes.For, "loops are"),
    (nodes.Macro, "macros are"),
    (nodes.CallBlock, "macros are"),
    (nodes.Call, "calls (of functions and methods) are"),
    (nodes.Include, "{% include %} is"),
    (nodes.Import, "{% import %} is"),
    (nodes.FromImport, "{% import %} is"),
    (nodes.Extends, "{% extends %} is"),
    (nodes.Block, "{% block %} is"),
    (nodes.Assign, "{% set %} is"),
    (nodes.AssignBlock, "{% set %} is"),
    (nodes.With, "{% with %} is"),
    (nodes.FilterBlock, "{% filter %} is"),
    (nodes.Concat, "'~' is"),
)


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
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined: raises, naming what is undefined
    # A literal number is harmless; anything else from the context must be quoted.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Unquoted()


class _Unquoted(Exception):
    pass


class Scope(dict[str, Any]):
    """``vars`` or ``secrets`` in a template's context: the values of the names it uses.

    A name it does not hold fails the render with a message naming it (and where it was
    looked for); nothing else of the mapping (its methods, its keys) is reachable.
    """

    __slots__ = ("kind", "where")

    def __init__(self, kind: str, values: Mapping[str, Any], *, where: str = "") -> None:
        super().__init__(values)
        self.kind = kind  # "variable" or "secret"
        self.where = where  # e.g. "in namespace 'ops' or globally"

    def lookup(self, name: object) -> Any:
        if isinstance(name, str) and name in self:
            return self[name]
        shown = str(name)[:80]
        where = f" {self.where}" if self.where else ""
        raise InvalidSpec(
            f"template error: {self.kind} {shown!r} is not defined{where}",
            details={"missing": {self.kind: shown}},
        )


_BUDGET: contextvars.ContextVar[list[int]] = contextvars.ContextVar("template_budget")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The sandbox, with operators bounded so ``{{ 'x' * 10**9 }}`` cannot eat memory and the
    ``vars``/``secrets`` scopes answering only the names they hold."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and (abs(_number(left)) > 1000 or abs(_number(right)) > 64):
            raise InvalidSpec("template error: exponent too large")
        if operator == "%" and isinstance(left, str):
            raise InvalidSpec("template error: string formatting with % is not allowed")
        if operator == "*":
            sizes = [len(v) if isinstance(v, str | list | tuple) else 1 for v in (left, right)]
            counts = [abs(v) if isinstance(v, int) else 1 for v in (left, right)]
            if max(sizes) * max(counts) > MAX_RENDERED:
                raise InvalidSpec("template error: result too large")
            _spend(max(sizes) * max(counts) if max(sizes) > 1 else 0)
        if operator == "+" and isinstance(left, str | list | tuple):
            _spend(len(left) + (len(right) if isinstance(right, str | list | tuple) else 0))
        return super().call_binop(context, operator, left, right)

    def call(self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        raise InvalidSpec("template error: calls are not allowed in templates")

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Scope):
            return obj.lookup(attribute)
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        if isinstance(obj, Scope):
            return obj.lookup(argument)
        return super().getitem(obj, argument)


def _spend(size: int) -> None:
    budget = _BUDGET.get(None)
    if budget is None:
        return
    budget[0] -= size
    if budget[0] < 0:
        raise InvalidSpec(
            f"template error: the template builds more than {MAX_BUILT // 1024} KiB of text"
        )


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _environment(shell: bool) -> ImmutableSandboxedEnvironment:
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        finalize=_finalize_shell if shell else _text,
        keep_trailing_newline=True,
    )
    kept = {name: env.filters[name] for name in FILTERS if name in env.filters}
    env.filters.clear()
    env.filters.update(kept)
    env.filters["shell_quote"] = shell_quote
    env.globals.clear()
    return env


_ARGV_ENV = _environment(shell=False)
_SHELL_ENV = _environment(shell=True)


@dataclass(frozen=True, slots=True)
class Refs:
    """The variables and secrets a template (or a job) names, and how it uses params: which
    ones it changes (filters, operators) rather than writes out as they are, or whether it
    reaches them by a computed name (``params_dynamic``). A param whose default holds a
    secret may only be written out as it is, like the secret itself."""

    vars: frozenset[str] = frozenset()
    secrets: frozenset[str] = frozenset()
    params_changed: frozenset[str] = frozenset()
    params_dynamic: bool = False

    def __or__(self, other: Refs) -> Refs:
        return Refs(
            self.vars | other.vars, self.secrets | other.secrets,
            self.params_changed | other.params_changed,
            self.params_dynamic or other.params_dynamic,
        )

    @property
    def values(self) -> bool:
        """Whether any variable or secret is named (values must be loaded to render)."""
        return bool(self.vars or self.secrets)


NO_REFS = Refs()


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=1024)
def _compile(text: str, shell: bool) -> tuple[Any, Refs]:
    env = _SHELL_ENV if shell else _ARGV_ENV
    try:
        parsed = env.parse(text)
        refs = _inspect(parsed)
        return env.from_string(parsed), refs
    except RecursionError:  # Jinja's parser and compiler recurse once per level of nesting
        raise InvalidSpec(TOO_DEEP) from None
    except TemplateError as exc:  # also an unknown filter, found when compiling
        hint = ""
        if "No filter named" in str(exc):
            hint = f"; allowed filters: {', '.join(sorted(set(FILTERS) - {'d'}))}"
        raise InvalidSpec(f"template error: {exc}{hint}") from exc


def _inspect(tree: nodes.Template) -> Refs:
    """Refuse what templates may not do; collect the variables and secrets they name."""
    for kind, what in _FORBIDDEN:
        node = tree.find(kind)
        if node is not None:
            raise InvalidSpec(
                f"template error: {what} not allowed in commands (line {node.lineno}); "
                "templates may use names, filters, operators and {% if %}"
            )
    for name in tree.find_all(nodes.Name):
        if name.name == "self":
            raise InvalidSpec("template error: 'self' is not available in commands")
    for attr in tree.find_all(nodes.Getattr):
        if attr.attr.startswith("_"):
            raise InvalidSpec(
                f"template error: attributes starting with '_' are not allowed ({attr.attr!r})"
            )
    found: dict[str, set[str]] = {scope: set() for scope in SCOPES}
    changed: set[str] = set()
    dynamic = False
    for node, parents in _walk(tree, ()):
        if isinstance(node, nodes.Name) and node.name in SCOPES:
            found[node.name].add(_scope_use(node, parents))
        elif isinstance(node, nodes.Name) and node.name == "params":
            key = _literal_key(node, parents)
            if key is None:
                dynamic = True
            elif not _output_as_is(parents[:-1]):
                changed.add(key)
    return Refs(frozenset(found["vars"]), frozenset(found["secrets"]), frozenset(changed),
                dynamic)


def _walk(
    tree: nodes.Node, parents: tuple[nodes.Node, ...]
) -> Iterator[tuple[nodes.Node, tuple[nodes.Node, ...]]]:
    """Every node with its ancestors, in the order of the text (iterative: nesting depth costs
    no stack)."""
    stack = [(tree, parents)]
    while stack:
        node, above = stack.pop()
        yield node, above
        children = list(node.iter_child_nodes())
        stack.extend((child, (*above, node)) for child in reversed(children))


def _scope_use(name: nodes.Name, parents: tuple[nodes.Node, ...]) -> str:
    """The literal name of ``vars.NAME`` / ``secrets["NAME"]``; anything else is refused."""
    scope = name.name
    key = _literal_key(name, parents)
    if key is None:
        raise InvalidSpec(
            f"template error: name {scope} literally, as {{{{ {scope}.NAME }}}} or "
            f"{{{{ {scope}['NAME'] }}}}"
        )
    if scope == "secrets" and not _output_as_is(parents[:-1]):
        raise InvalidSpec(
            f"template error: secret {key!r} may only be written as {{{{ secrets.{key} }}}} or "
            f"{{{{ secrets.{key} | shell_quote }}}} (so that its value can be masked in logs)"
        )
    return key


def _literal_key(name: nodes.Name, parents: tuple[nodes.Node, ...]) -> str | None:
    """``NAME`` of ``scope.NAME`` or ``scope["NAME"]``; None for any other use of the scope."""
    parent = parents[-1] if parents else None
    key: object = None
    if isinstance(parent, nodes.Getattr) and parent.node is name:
        key = parent.attr
    elif (isinstance(parent, nodes.Getitem) and parent.node is name
          and isinstance(parent.arg, nodes.Const)):
        key = parent.arg.value
    return key if name.ctx == "load" and isinstance(key, str) else None


def _output_as_is(parents: tuple[nodes.Node, ...]) -> bool:
    """Whether the expression whose ancestors are ``parents`` is written out unchanged."""
    if parents and isinstance(parents[-1], nodes.Filter) and parents[-1].name == "shell_quote":
        parents = parents[:-1]
    return bool(parents) and isinstance(parents[-1], nodes.Output)


def references(text: str, *, shell: bool = False) -> Refs:
    """The variables and secrets ``text`` names; ``InvalidSpec`` if it is not a valid
    template."""
    if not is_template(text):
        return NO_REFS
    return _compile(text, shell)[1]


def check(text: str, *, shell: bool) -> None:
    """Refuse a template that does not parse (called when a job is saved)."""
    if is_template(text):
        _compile(text, shell)


def render(text: str, context: Mapping[str, Any], *, shell: bool) -> str:
    """Render one command element; raise ``InvalidSpec`` with the reason if it cannot be."""
    if not is_template(text):
        return text
    template, _ = _compile(text, shell)
    budget = _BUDGET.set([MAX_BUILT])
    parts: list[str] = []
    size = 0
    try:
        for part in template.generate(**context):
            size += len(part)
            if size > MAX_RENDERED:
                raise InvalidSpec("template error: the rendered command is larger than 256 KiB")
            parts.append(part)
    except _Unquoted:
        raise InvalidSpec(
            "template error: a value is used unquoted in a shell command; write "
            "{{ params.NAME | shell_quote }} (or vars., secrets.) or give the command as an "
            "argv list"
        ) from None
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (ArithmeticError, MemoryError, OverflowError, RecursionError) as exc:
        raise InvalidSpec(f"template error: {exc.__class__.__name__}") from exc
    except (TypeError, ValueError, LookupError) as exc:  # a filter or operator given bad values
        raise InvalidSpec(f"template error: {exc}") from exc
    finally:
        _BUDGET.reset(budget)
    return "".join(parts)


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


def name_chains(text: str, *, shell: bool) -> list[tuple[str, ...]]:
    """The names a template reads, each as its chain of attributes: ``{{ steps.a.outputs.b |
    shell_quote }}`` reads ``("steps", "a", "outputs", "b")``. Lets a caller check, before
    anything runs, that every name will exist."""
    if not is_template(text):
        return []
    _compile(text, shell)  # refuses what does not parse, or what templates may not do
    parsed = (_SHELL_ENV if shell else _ARGV_ENV).parse(text)
    found: list[tuple[str, ...]] = []
    for node, parents in _walk(parsed, ()):
        chain = _chain(node)
        # ``steps.a`` inside ``steps.a.outputs`` is part of the longer chain, not one of its own
        if chain is not None and not (parents and _chain(parents[-1]) is not None):
            found.append(chain)
    return found


@lru_cache(maxsize=256)
def _expression(source: str) -> Any:
    _compile("{{ " + source + " }}", False)  # the rules every template follows, checked once
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
    budget = _BUDGET.set([MAX_BUILT])  # the same bound on what operators build as ``render``
    try:
        return expression(**context)
    except TemplateError as exc:
        raise InvalidSpec(f"template error: {exc}") from exc
    except (ArithmeticError, MemoryError, OverflowError) as exc:
        raise InvalidSpec(f"template error: {exc.__class__.__name__}") from exc
    except RecursionError:
        raise InvalidSpec(TOO_DEEP) from None
    finally:
        _BUDGET.reset(budget)
