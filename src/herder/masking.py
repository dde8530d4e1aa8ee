"""Masking secrets: every occurrence of a secret's value becomes ``***``.

The supervisor masks a run's output as it writes its logs (so the files on disk never hold a
value), a ``StreamMasker`` per stream: a value split across two reads of a pipe is caught by
keeping back the end of a read while it could be the start of a value. The engine masks the
outputs file and error messages with ``Masker.text`` and ``Masker.bytes``.

What is masked for a value: the value itself, each of its lines when it has several, its
JSON-escaped form and its shell-quoted form (how it appears in a ``/bin/sh -c`` command line), as
UTF-8. A value transformed by the run itself (reversed, base64-encoded) cannot be recognised:
masking protects against accidents, not against a job written to reveal a secret.

Standard library only: the supervisor imports it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable

MASK = "***"
MIN_LENGTH = 6  # shorter forms (a line of a value, say) are not masked on their own


def forms(values: Iterable[str]) -> list[str]:
    """The strings to mask for ``values``: see the module's docstring."""
    found: set[str] = set()
    for value in values:
        if not value:
            continue
        found.add(value)
        found.update(line for line in value.splitlines() if len(line.strip()) >= MIN_LENGTH)
        for escaped in (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1],
                        shlex.quote(value)):
            found.add(escaped)
    return sorted(found, key=len, reverse=True)


class Masker:
    """Replaces the given strings (``forms`` of the secrets) in text and bytes."""

    def __init__(self, values: Iterable[str]) -> None:
        # Longest first, so that a value holding a shorter one is replaced whole. One
        # ``replace`` per string (a C search) is several times faster than one regex of them
        # all: a run uses a few secrets, each with a few forms.
        self.strings = sorted({s for s in values if s}, key=len, reverse=True)
        self.patterns = sorted((s.encode() for s in self.strings), key=len, reverse=True)
        self._mask = MASK.encode()

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def bytes(self, data: bytes) -> bytes:
        for pattern in self.patterns:
            data = data.replace(pattern, self._mask)
        return data

    def text(self, text: str) -> str:
        for string in self.strings:
            text = text.replace(string, MASK)
        return text

    def stream(self) -> StreamMasker:
        return StreamMasker(self)


class StreamMasker:
    """Masks one stream given in pieces: ``feed`` answers what may be written now, keeping back
    an end that could be the start of a value; ``flush`` answers the rest at the stream's end."""

    def __init__(self, masker: Masker) -> None:
        self._masker = masker
        self._held = b""

    def feed(self, data: bytes) -> bytes:
        if not self._masker:
            return data
        masked = self._masker.bytes(self._held + data)
        keep = _prefix_at_end(masked, self._masker.patterns)
        self._held = masked[len(masked) - keep:] if keep else b""
        return masked[: len(masked) - keep]

    def flush(self) -> bytes:
        held, self._held = self._held, b""
        return held

    @property
    def holding(self) -> bool:
        return bool(self._held)


def _prefix_at_end(data: bytes, patterns: list[bytes]) -> int:
    """The length of the longest end of ``data`` that is a proper start of some pattern."""
    best = 0
    for pattern in patterns:
        first = pattern[:1]
        # Only positions where the pattern's first byte occurs can start a match.
        start = max(0, len(data) - len(pattern) + 1)
        at = data.find(first, start)
        while at != -1:
            size = len(data) - at
            if size > best and pattern.startswith(data[at:]):
                best = size
                break  # later positions give shorter ends
            at = data.find(first, at + 1)
    return best
