"""A run's outputs: what it publishes for whoever comes after it (a workflow's next step).

A run writes them to the file named in ``$HERDER_OUTPUT``, in one of two forms:

- ``key=value`` lines: the key is what comes before the first ``=``, the value the rest of the
  line as is (a string; a trailing ``\\r`` is dropped). Later lines win; blank lines and lines
  starting with ``#`` are ignored.
- one JSON object, the whole file (its first non-blank character is ``{`` or ``[``): values may
  be strings, numbers, booleans, null, lists and objects, nested at most ``MAX_DEPTH`` deep.

Keys follow the rule of param names: letters, digits and ``_``, starting with a letter, at most
64 characters. A file larger than ``MAX_BYTES`` or with more than ``MAX_KEYS`` keys, or one that
breaks any rule, is not kept at all: the run keeps ``{}`` and says why (``Outputs.error``). Only
what both SQLite and PostgreSQL's JSONB can store passes: no NUL characters, no lone surrogates,
no infinite numbers, none beyond 2**63-1. No I/O here; ``engine.outputs`` reads the file.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from herder.model.errors import InvalidSpec

MAX_BYTES = 64 * 1024
MAX_KEYS = 256
MAX_KEY = 64
MAX_DEPTH = 8  # the outer object counts as one level
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
# Numbers beyond what PostgreSQL's bigint holds are refused (JSON consumers lose them anyway).
_MAX_INT = 2**63 - 1
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


@dataclass(frozen=True, slots=True, kw_only=True)
class Outputs:
    """What a run published (``values``), or why nothing was kept (``error``)."""

    values: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def load(data: bytes) -> Outputs:
    """The outputs of a file's content; broken content keeps nothing and says why. Never
    raises: whatever a run writes, its end is recorded."""
    try:
        return Outputs(values=parse(data))
    except InvalidSpec as exc:
        return Outputs(error=exc.message)


def parse(data: bytes) -> dict[str, Any]:
    """Parse the content of an output file (see the module's docstring); ``InvalidSpec`` says
    what is wrong, in words a person writing the script can act on."""
    if len(data) > MAX_BYTES:
        raise InvalidSpec(f"outputs: the file is larger than {MAX_BYTES // 1024} KiB; nothing kept")
    if b"\0" in data:
        raise InvalidSpec(f"outputs: the file contains a NUL byte (at byte {data.index(0)})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidSpec(f"outputs: the file is not valid UTF-8 (at byte {exc.start})") from None
    text = text.removeprefix("\ufeff")
    if text.lstrip()[:1] in ("{", "["):
        return _parse_json(text)
    return _parse_lines(text)


def check_key(key: str, where: str) -> str:
    if len(key) > MAX_KEY or not _KEY.fullmatch(key):
        raise InvalidSpec(
            f"outputs: {where}: {_show(key)} is not a valid output name (letters, digits and _, "
            f"starting with a letter, at most {MAX_KEY} characters)"
        )
    return key


def _parse_lines(text: str) -> dict[str, Any]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise InvalidSpec(f"outputs: line {number}: expected key=value, got {_show(line)}")
        values[check_key(key, f"line {number}")] = value
        if len(values) > MAX_KEYS:
            raise InvalidSpec(f"outputs: more than {MAX_KEYS} keys; nothing kept")
    return values


def _parse_json(text: str) -> dict[str, Any]:
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise InvalidSpec(f"outputs: the JSON is nested deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(
            text, parse_int=_int, parse_float=_float, parse_constant=_constant
        )
    except json.JSONDecodeError as exc:
        raise InvalidSpec(
            f"outputs: the file is not valid JSON: {exc.msg} (line {exc.lineno}, column "
            f"{exc.colno})"
        ) from None
    except (ValueError, RecursionError) as exc:  # the parser's own limits; never expected
        raise InvalidSpec(f"outputs: the file is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidSpec(
            f"outputs: the JSON must be an object of outputs, not {_json_kind(value)}"
        )
    if len(value) > MAX_KEYS:
        raise InvalidSpec(f"outputs: more than {MAX_KEYS} keys; nothing kept")
    for key, item in value.items():
        check_key(key, "JSON key")
        _check_value(item, key)
    return value


def _depth(text: str) -> int:
    """How deep brackets nest outside strings, counted without parsing (so no input can run
    the parser into its recursion limit)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_DEPTH:
                break
        else:
            depth -= 1
    return deepest


def _check_value(value: Any, where: str) -> None:
    """Refuse what the stores cannot keep: NUL characters and lone surrogates in strings."""
    if isinstance(value, str):
        _check_string(value, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_value(item, f"{where}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_string(key, f"{where} (a key)")
            _check_value(item, f"{where}.{key}")


def _check_string(text: str, where: str) -> None:
    if "\0" in text:
        raise InvalidSpec(f"outputs: {_show(where)} holds a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidSpec(
            f"outputs: {_show(where)} holds an unpaired surrogate (a broken \\ud800-\\udfff "
            "escape)"
        ) from None


def _int(text: str) -> int:
    # Checked by length first: converting a 60,000-digit number is slow, and refused anyway.
    if len(text.lstrip("-")) > 19 or abs(number := int(text)) > _MAX_INT:
        raise InvalidSpec(f"outputs: the number {_show(text)} is out of range (at most 2**63-1)")
    return number


def _float(text: str) -> float:
    # Bounded like integers: PostgreSQL keeps 1e300 as a 301-digit integer, not a float.
    number = float(text)
    if not math.isfinite(number) or abs(number) > _MAX_INT:
        raise InvalidSpec(f"outputs: the number {_show(text)} is out of range (at most 2**63-1)")
    return number


def _constant(text: str) -> Any:
    raise InvalidSpec(f"outputs: {text} is not a JSON value; use a string or null")


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    return "a string" if isinstance(value, str) else "a single value"


def _show(text: str, limit: int = 40) -> str:
    """A piece of what the run wrote, short and quoted, for an error message."""
    return repr(text[:limit] + "…" if len(text) > limit else text)
