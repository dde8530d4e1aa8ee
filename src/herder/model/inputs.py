"""Input files of a run: the rules their names and sizes follow (checked at the API edge)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from herder.model.errors import InvalidSpec

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
FOLDER = "inputs"  # in the run's working folder; also ``$HERDER_INPUTS``


@dataclass(frozen=True, slots=True, kw_only=True)
class FileLimits:
    """How much a run may be given."""

    max_size: int = 16 * 1024 * 1024
    max_count: int = 32
    max_total: int = 64 * 1024 * 1024


def check_name(name: str) -> str:
    """A plain file name: letters, digits, '.', '_' and '-', starting with a letter or digit
    (so never '.', '..' or hidden), at most 128 characters; never a path."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise InvalidSpec(
            f"file name {name[:80]!r} is not allowed: use letters, digits, '.', '_' and '-', "
            "starting with a letter or digit, at most 128 characters, no '..' (a name, not "
            "a path)"
        )
    return name
