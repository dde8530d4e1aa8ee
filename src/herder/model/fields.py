"""The shape every small mapping in a job spec shares (``schedule``, ``misfire``, ``retries``,
``retention``): a mapping, with only the keys it allows, each refusal naming the field."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from herder.model.errors import InvalidSpec


def mapping(data: object, field: str, allowed: Collection[str], example: str) -> Mapping[str, Any]:
    """``data`` as a mapping with keys from ``allowed`` only; ``InvalidSpec`` otherwise."""
    if not isinstance(data, Mapping):
        raise InvalidSpec(f"{field}: must be a mapping such as {example}")
    unknown = sorted(str(k)[:40] for k in data if k not in allowed)
    if unknown:
        raise InvalidSpec(
            f"{field}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )
    return data
