"""A server's stable identity: the owner name on the runs it launches, kept across restarts."""

from __future__ import annotations

import uuid
from pathlib import Path


def server_id(data_dir: Path) -> str:
    """Read ``<data>/server-id``, creating it once; a restarted server owns its runs again."""
    path = data_dir / "server-id"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    value = f"server-{uuid.uuid4().hex[:16]}"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(value + "\n")
    tmp.replace(path)
    return value
