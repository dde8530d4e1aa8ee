"""Job chains: a job's ``after: [{job, on}]`` starts it when a run of another job ends.

* ``job`` is a job's name in the follower's own namespace, or ``namespace/name``.
* ``on`` is ``success`` (the default: a bare string ``extract`` is short for
  ``{job: extract, on: success}``), ``failure`` (TIMEOUT, PROC_ERROR, APP_ERROR or ABORTED) or
  ``always`` (any of those, or SUCCESS). A SKIPPED run never ran, and starts nothing.
* Checked here, without the store: the form of each entry, an unknown ``on``, a job named
  twice, a job that follows itself. Whether the upstream jobs exist and whether the chains
  make a cycle is the store's to say (``store.chains``), with the same paths (``after[1]``).

A chained run sees its upstream run in templates as ``upstream`` (``upstream.id``,
``upstream.job``, ``upstream.status``, ``upstream.outputs.K``), and its params are the job's
defaults overridden by the upstream outputs named like a param the job declares
(``chained_params``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from herder.model.errors import InvalidSpec
from herder.model.runs import RunStatus

ON = ("success", "failure", "always")
FAILED = frozenset(
    {RunStatus.TIMEOUT, RunStatus.PROC_ERROR, RunStatus.APP_ERROR, RunStatus.ABORTED}
)
MAX_AFTER = 64
UPSTREAM_FIELDS = ("id", "job", "status", "outputs")


@dataclass(frozen=True, slots=True, kw_only=True)
class Follow:
    """One entry of ``after``: start when a run of ``job`` ends as ``on`` says."""

    job: str
    on: str = "success"

    def to_dict(self) -> dict[str, str]:
        return {"job": self.job, "on": self.on}

    def refers_to(self, namespace: str) -> tuple[str, str]:
        """``(namespace, name)`` of the upstream job; a bare name is in ``namespace``."""
        space, _, name = self.job.rpartition("/")
        return space or namespace, name


def holds(on: str, status: RunStatus) -> bool:
    """Whether a run that ended ``status`` starts a follower whose condition is ``on``."""
    if status is RunStatus.SUCCESS:
        return on in ("success", "always")
    if status in FAILED:
        return on in ("failure", "always")
    return False  # SKIPPED (never ran), or not ended


def parse_after(value: object, *, namespace: str, name: str) -> tuple[Follow, ...]:
    """The ``after`` of job ``namespace/name``, checked as the module docstring says."""
    from herder.model.jobs import check_name  # model.jobs imports this module

    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise InvalidSpec("after: expected a list of {job, on} (or of job names)")
    if len(value) > MAX_AFTER:
        raise InvalidSpec(f"after: at most {MAX_AFTER} entries")
    found: list[Follow] = []
    seen: dict[tuple[str, str], int] = {}
    for i, entry in enumerate(value):
        at = f"after[{i}]"
        if isinstance(entry, str):
            entry = {"job": entry}
        if not isinstance(entry, Mapping):
            raise InvalidSpec(f"{at}: expected {{job: NAME, on: success|failure|always}}")
        unknown = sorted(set(entry) - {"job", "on"})
        if unknown:
            raise InvalidSpec(f"{at}: unknown field {unknown[0][:60]!r}; expected job, on")
        job = entry.get("job")
        if not isinstance(job, str) or not job:
            raise InvalidSpec(f"{at}.job: missing; give a job's name or namespace/name")
        on = entry.get("on", "success")
        if on not in ON:
            raise InvalidSpec(
                f"{at}.on: {str(on)[:60]!r} is not one of {', '.join(ON)}",
                details={"allowed": list(ON)},
            )
        space, slash, short = job.rpartition("/")
        if slash:
            check_name(space, what=f"{at}.job: the namespace")
        check_name(short, what=f"{at}.job")
        follow = Follow(job=job, on=on)
        ref = follow.refers_to(namespace)
        if ref == (namespace, name):
            raise InvalidSpec(f"{at}.job: a job cannot follow itself ({namespace}/{name})")
        if ref in seen:
            raise InvalidSpec(
                f"{at}.job: {'/'.join(ref)} is followed already (after[{seen[ref]}]); give "
                "each job once, with one condition (always: for any end)"
            )
        seen[ref] = i
        found.append(follow)
    return tuple(found)


def upstream_context(
    *, run_id: int | str, job: str, status: str, outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """What templates see as ``upstream``."""
    return {"id": run_id, "job": job, "status": status, "outputs": dict(outputs)}


# A run of a job with ``after`` that was not started by a chain (run by hand, on its schedule):
# ``upstream`` is there, empty, so ``{{ upstream.outputs.rows | default('0') }}`` renders.
NO_UPSTREAM = upstream_context(run_id="", job="", status="", outputs={})


class _SampleOutputs(dict[str, Any]):
    """Any output an upstream run may publish, as a sample string (so the quoting rule of
    shell strings is checked on save)."""

    def __missing__(self, key: str) -> str:
        return "sample"


def sample_upstream() -> dict[str, Any]:
    """``upstream`` for the check on save: every output name reads as a sample."""
    return {"id": 1, "job": "default/sample", "status": "SUCCESS", "outputs": _SampleOutputs()}


def chained_params(
    defaults: Mapping[str, Any], outputs: Mapping[str, Any]
) -> dict[str, Any]:
    """A chained run's params: the follower's defaults, each overridden by the upstream output
    of the same name. Strings, numbers and booleans are passed as they are; lists and objects
    as their JSON text; a null leaves the default."""
    params = dict(defaults)
    for name in defaults:
        if name not in outputs or outputs[name] is None:
            continue
        value = outputs[name]
        if isinstance(value, list | dict):
            value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if isinstance(value, str) and "\x00" in value:
            continue  # outputs refuse NUL already; an environment could not hold it
        params[name] = value
    return params
