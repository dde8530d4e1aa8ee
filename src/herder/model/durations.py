"""Durations as people write them: ``90s``, ``1h``, ``1h30m``, ``250ms`` or plain seconds."""

from __future__ import annotations

import re

from herder.model.errors import InvalidSpec

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|s|m|h|d))+")
MAX_SECONDS = 366 * 86400.0


def parse_duration(value: str | int | float, *, field: str = "duration") -> float:
    """Return seconds (> 0) for ``value``; raise ``InvalidSpec`` naming ``field`` otherwise."""
    if isinstance(value, bool):
        raise InvalidSpec(f"{field}: expected a duration such as '90s' or '1h', got a boolean")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        elif _WHOLE.fullmatch(text):
            seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
        else:
            raise InvalidSpec(
                f"{field}: {value[:40]!r} is not a duration; write e.g. '90s', '5m', '1h30m' or 300"
            )
    else:
        raise InvalidSpec(f"{field}: expected a duration such as '90s' or '1h'")
    if not seconds > 0 or seconds != seconds:
        raise InvalidSpec(f"{field}: must be greater than zero")
    if seconds > MAX_SECONDS:
        raise InvalidSpec(f"{field}: must be at most 366 days")
    return seconds


def format_duration(seconds: float) -> str:
    """The shortest exact text for ``seconds`` that ``parse_duration`` reads back."""
    if seconds < 1 or seconds != int(seconds):
        return f"{seconds:g}s"
    whole = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size:
            parts.append(f"{whole // size}{unit}")
            whole %= size
    return "".join(parts)
