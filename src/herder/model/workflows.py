"""Workflows: a graph of named steps, each a job, an inline command, a nested workflow or an
approval, started when the steps it ``needs`` have ended as it asks.

This module holds the spec (frozen values) and reads it from its JSON form, field by field,
every refusal naming where it is (``steps[2].timeout: must be greater than zero``). The rules
that look at the graph as a whole (unknown steps, cycles, conditions that can never hold,
template references) are in ``model.workflow_graph``; what to do next in a workflow run is
``model.workflow_runs.decide``. The schedule and policy fields are a job's, read by the same
functions (``model.schedules``, ``model.policies``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, get_args

from herder.model import jobs as rules
from herder.model import templates
from herder.model.durations import parse_duration
from herder.model.errors import InvalidSpec
from herder.model.policies import (
    Concurrency,
    Retention,
    Retries,
    check_concurrency,
    check_max_active,
    parse_retention,
    parse_retries,
)
from herder.model.schedules import Misfire, Schedule, parse_misfire, parse_schedule

Condition = Literal["success", "failure", "always"]
CONDITIONS: tuple[str, ...] = get_args(Condition)
Kind = Literal["job", "command", "workflow", "approval"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_STEPS = 1000
MAX_PARALLELISM = 10_000
MAX_ITEMS = 10_000  # items of one foreach
MAX_MESSAGE = 4096
WORKFLOW_KEYS = (
    "name", "namespace", "description", "labels", "annotations", "params", "steps",
    "on_failure", "parallelism", "schedule", "misfire", "concurrency", "max_active", "enabled",
    "timeout", "retention",
)
STEP_KEYS = (
    "name", "description", *KINDS, "params", "env", "needs", "foreach", "parallelism",
    "timeout", "retries", "backend",
)
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class Need:
    """``needs: [{step: extract, on: success}]``: start once ``step`` has ended so."""

    step: str
    on: Condition = "success"

    def to_dict(self) -> dict[str, str]:
        return {"step": self.step, "on": self.on}


@dataclass(frozen=True, slots=True, kw_only=True)
class Approval:
    """A step that waits in ACTION_PENDING until a person approves or rejects it."""

    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """One node of the graph. Exactly one of ``job``, ``command``, ``workflow`` and
    ``approval`` says what it does (``kind``)."""

    name: str
    description: str = ""
    job: str | None = None  # a job's ``name`` (in the workflow's namespace) or ``namespace/name``
    command: list[str] | str | None = None
    workflow: str | None = None  # the same kind of reference, to another workflow
    approval: Approval | None = None
    params: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    needs: tuple[Need, ...] = ()
    foreach: str | list[Any] | None = None  # a template giving a list, or a list
    parallelism: int | None = None  # foreach items at once
    timeout: float | None = None
    retries: Retries | None = None
    backend: str | None = None  # for an inline command; default local

    @property
    def kind(self) -> Kind:
        if self.job is not None:
            return "job"
        if self.command is not None:
            return "command"
        if self.workflow is not None:
            return "workflow"
        return "approval"

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON form: the name, what it does, and the fields it sets."""
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        if self.approval is not None:
            data["approval"] = {"message": self.approval.message}
        for key in ("job", "command", "workflow"):
            value = getattr(self, key)
            if value is not None:
                data[key] = list(value) if isinstance(value, list) else value
        if self.params:
            data["params"] = dict(self.params)
        if self.env:
            data["env"] = dict(self.env)
        if self.needs:
            data["needs"] = [n.to_dict() for n in self.needs]
        if self.foreach is not None:
            data["foreach"] = list(self.foreach) if isinstance(self.foreach, list) else self.foreach
        for key in ("parallelism", "timeout", "backend"):
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.retries is not None:
            data["retries"] = self.retries.to_dict()
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkflowSpec:
    """A workflow definition, as the store keeps it and the engine runs it."""

    name: str
    namespace: str = rules.DEFAULT_NAMESPACE
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    steps: tuple[Step, ...]
    on_failure: tuple[Step, ...] = ()
    parallelism: int | None = None  # steps running at once; None: no limit
    schedule: Schedule | None = None
    misfire: Misfire = field(default_factory=Misfire)
    concurrency: Concurrency = "allow"
    max_active: int = 1
    enabled: bool = True
    timeout: float | None = None
    retention: Retention = field(default_factory=Retention)
    # What is derived from the (frozen) graph once and read at every decision of its runs:
    # steps by name, their order, what each may see (``model.workflow_graph``).
    memo: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    def step(self, name: str) -> Step:
        """A step (or an on_failure step) by name."""
        by_name = self.memo.get("by_name")
        if by_name is None:
            by_name = self.memo["by_name"] = {s.name: s for s in (*self.steps, *self.on_failure)}
        found: Step = by_name[name]
        return found

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the store and answered by the API."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "description": self.description,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "params": dict(self.params),
            "steps": [s.to_dict() for s in self.steps],
            "on_failure": [s.to_dict() for s in self.on_failure],
            "parallelism": self.parallelism,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
            "misfire": self.misfire.to_dict(),
            "concurrency": self.concurrency,
            "max_active": self.max_active,
            "enabled": self.enabled,
            "timeout": self.timeout,
            "retention": self.retention.to_dict() or None,
        }


def refers_to(reference: str, namespace: str) -> tuple[str, str]:
    """``(namespace, name)`` of a step's ``job`` or ``workflow``: a bare name is in the
    workflow's own namespace."""
    space, _, name = reference.rpartition("/")
    return space or namespace, name


def _at(
    where: str, fn: Callable[..., T], *args: Any, named: str | None = None, **kwargs: Any
) -> T:
    """Call a check; its refusal gets ``where`` in front (``steps[2].`` + ``timeout: …``), and
    the field ``named`` unless the message names it already."""
    try:
        return fn(*args, **kwargs)
    except InvalidSpec as exc:
        message = exc.message
        if named is not None and not message.startswith((f"{named}:", f"{named}.")):
            message = f"{named}: {message}"
        raise InvalidSpec(f"{where}{message}", details=exc.details) from None


def _keys(data: object, where: str, allowed: tuple[str, ...], what: str) -> Mapping[str, Any]:
    if not isinstance(data, Mapping):
        raise InvalidSpec(f"{where}: must be a mapping ({what})")
    for key in data:
        if key not in allowed:
            raise InvalidSpec(
                f"{where}.{str(key)[:60]}: unknown field; {what} has {', '.join(allowed)}"
            )
    return data


def _mapping(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{where}{key}: must be a mapping")
    return value


def _limit(value: object, where: str, maximum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidSpec(f"{where}: must be a whole number from 1 to {maximum}")
    return value


def _text(value: object, where: str, maximum: int = MAX_MESSAGE) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or "\x00" in value or len(value) > maximum:
        raise InvalidSpec(f"{where}: must be text of at most {maximum} characters, no NUL")
    return value


def _reference(value: object, where: str) -> str:
    """A ``name`` or ``namespace/name`` of a job or a workflow."""
    if not isinstance(value, str):
        raise InvalidSpec(f"{where}: must be a name or namespace/name")
    space, slash, name = value.rpartition("/")
    if slash:
        _at(f"{where}: ", rules.check_name, space, what="namespace")
    _at(f"{where}: ", rules.check_name, name, what="name")
    return value


def _templates(values: list[str] | str, where: str, *, shell: bool) -> None:
    for value in [values] if isinstance(values, str) else values:
        _at(f"{where}: ", templates.check, value, shell=shell)


def _needs(data: object, where: str) -> tuple[Need, ...]:
    if data is None:
        return ()
    if isinstance(data, str):
        data = [data]  # ``needs: extract`` reads as a list of one
    if not isinstance(data, list):
        raise InvalidSpec(f"{where}: must be a list of step names or {{step, on}} mappings")
    needs = []
    for i, item in enumerate(data):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            item = {"step": item}
        item = _keys(item, at, ("step", "on"), "a need")
        if "step" not in item:
            raise InvalidSpec(f"{at}.step: missing")
        name = _at(f"{at}.step: ", rules.check_name, item["step"], what="step")
        on = item.get("on", "success")
        if on not in CONDITIONS:
            raise InvalidSpec(
                f"{at}.on: {str(on)[:20]!r} is not one of {', '.join(CONDITIONS)} (write "
                "'on' quoted in YAML, or YAML reads it as true)"
            )
        needs.append(Need(step=name, on=on))
    return tuple(needs)


def _foreach(value: object, where: str) -> str | list[Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        if not templates.is_template(value):
            raise InvalidSpec(
                f"{where}: {value[:60]!r} is not a template; give a list, or a template "
                "giving one such as '{{ steps.extract.outputs.files }}'"
            )
        _at(f"{where}: ", templates.check, value, shell=False)
        return value
    if isinstance(value, list):
        if not value:
            raise InvalidSpec(f"{where}: an empty list; the step would never run")
        if len(value) > MAX_ITEMS:
            raise InvalidSpec(f"{where}: at most {MAX_ITEMS} items")
        for i, item in enumerate(value):
            rules.check_value(item, where=f"{where}[{i}]")
        return list(value)
    raise InvalidSpec(f"{where}: must be a list or a template giving one")


def _kind(data: Mapping[str, Any], where: str) -> Kind:
    given = [k for k in KINDS if data.get(k) is not None]
    if len(given) != 1:
        found = f"it has {' and '.join(given)}" if given else "it has none"
        raise InvalidSpec(
            f"{where}: a step has exactly one of job, command, workflow, approval ({found})"
        )
    kind: Kind = given[0]  # type: ignore[assignment]  # one of KINDS
    return kind


def _approval(value: object, where: str) -> Approval:
    if value is True:
        return Approval()
    data = _keys(value, where, ("message",), "an approval")
    return Approval(message=_text(data.get("message"), f"{where}.message"))


def parse_step(data: object, where: str) -> Step:
    """One step from its JSON form; ``where`` is its path (``steps[2]``)."""
    data = _keys(data, where, STEP_KEYS, "a step")
    if "name" not in data:
        raise InvalidSpec(f"{where}.name: missing; every step has a name")
    name = _at(f"{where}.name: ", rules.check_name, data["name"], what="step name")
    kind = _kind(data, where)
    p = f"{where}."
    unusable = {
        "approval": ("params", "env", "foreach", "parallelism", "retries", "backend"),
        "workflow": ("env", "retries", "backend"),
        "job": ("backend",),
        "command": (),
    }[kind]
    for key in unusable:
        if data.get(key) is not None:
            raise InvalidSpec(f"{p}{key}: an {kind} step has no {key}"
                              if kind[0] in "aeiou" else f"{p}{key}: a {kind} step has no {key}")
    params = _at(p, rules.check_params, _mapping(data, "params", p))
    for key, value in params.items():
        if isinstance(value, str):
            _templates(value, f"{p}params.{key}", shell=False)
    env = _at(p, rules.check_env, _mapping(data, "env", p), allow_reserved=kind == "command")
    for key, value in env.items():
        _templates(value, f"{p}env.{key}", shell=False)
    command = None
    if kind == "command":
        command = _at(p, rules.check_command, data["command"], named="command")
    foreach = _foreach(data.get("foreach"), f"{p}foreach")
    parallelism = _limit(data.get("parallelism"), f"{p}parallelism", MAX_PARALLELISM)
    if parallelism is not None and foreach is None:
        raise InvalidSpec(f"{p}parallelism: limits foreach items; this step has no foreach")
    timeout = data.get("timeout")
    backend = data.get("backend")
    if backend is not None and not isinstance(backend, str):
        raise InvalidSpec(f"{p}backend: must be a backend's name")
    return Step(
        name=name,
        description=_text(data.get("description"), f"{p}description"),
        job=_reference(data["job"], f"{p}job") if kind == "job" else None,
        command=command,
        workflow=_reference(data["workflow"], f"{p}workflow") if kind == "workflow" else None,
        approval=_approval(data["approval"], f"{p}approval") if kind == "approval" else None,
        params=params,
        env=env,
        needs=_needs(data.get("needs"), f"{p}needs"),
        foreach=foreach,
        parallelism=parallelism,
        timeout=None if timeout is None else parse_duration(timeout, field=f"{p}timeout"),
        retries=_at(p, parse_retries, data.get("retries"), named="retries"),
        backend=backend,
    )


def _steps(data: object, where: str, *, required: bool) -> tuple[Step, ...]:
    if data is None and not required:
        return ()
    if not isinstance(data, list) or (required and not data):
        raise InvalidSpec(f"{where}: must be a list of steps" + (", at least one" * required))
    if len(data) > MAX_STEPS:
        raise InvalidSpec(f"{where}: at most {MAX_STEPS} steps")
    return tuple(parse_step(item, f"{where}[{i}]") for i, item in enumerate(data))


def parse_workflow(data: object) -> WorkflowSpec:
    """A workflow from its JSON form (the spec with name, namespace, labels and annotations
    beside it), checked field by field and then as a graph (``workflow_graph.check``)."""
    from herder.model import workflow_graph  # it reads the spec built here

    data = _keys(data, "workflow", WORKFLOW_KEYS, "a workflow")
    if "name" not in data:
        raise InvalidSpec("name: missing")
    timeout = data.get("timeout")
    schedule = data.get("schedule")
    enabled = data.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidSpec("enabled: must be true or false")
    spec = WorkflowSpec(
        name=rules.check_name(data["name"]),
        namespace=rules.check_name(
            data.get("namespace") or rules.DEFAULT_NAMESPACE, what="namespace"
        ),
        description=_text(data.get("description"), "description"),
        labels=rules.check_labels(_mapping(data, "labels", "")),
        annotations=rules.check_annotations(_mapping(data, "annotations", "")),
        params=rules.check_params(_mapping(data, "params", "")),
        steps=_steps(data.get("steps"), "steps", required=True),
        on_failure=_steps(data.get("on_failure"), "on_failure", required=False),
        parallelism=_limit(data.get("parallelism"), "parallelism", MAX_PARALLELISM),
        schedule=None if schedule is None else _at("", parse_schedule, schedule,
                                                    named="schedule"),
        misfire=_at("", parse_misfire, data.get("misfire"), named="misfire"),
        concurrency=check_concurrency(data.get("concurrency", "allow")),
        max_active=check_max_active(data.get("max_active", 1)),
        enabled=enabled,
        timeout=None if timeout is None else parse_duration(timeout, field="timeout"),
        retention=_at("", parse_retention, data.get("retention"), named="retention"),
    )
    workflow_graph.check(spec)
    return spec


def _step_from(data: Mapping[str, Any]) -> Step:
    approval = data.get("approval")
    return Step(
        name=data["name"],
        description=data.get("description", ""),
        job=data.get("job"),
        command=data.get("command"),
        workflow=data.get("workflow"),
        approval=None if approval is None else Approval(message=approval.get("message", "")),
        params=dict(data.get("params") or {}),
        env=dict(data.get("env") or {}),
        needs=tuple(Need(step=n["step"], on=n["on"]) for n in data.get("needs") or ()),
        foreach=data.get("foreach"),
        parallelism=data.get("parallelism"),
        timeout=data.get("timeout"),
        retries=parse_retries(data.get("retries")),
        backend=data.get("backend"),
    )


def from_dict(data: Mapping[str, Any]) -> WorkflowSpec:
    """Read back what ``WorkflowSpec.to_dict`` wrote. It was checked on the way in, so it is
    not checked again: reading a workflow of a thousand steps costs no template compiles."""
    schedule = data.get("schedule")
    return WorkflowSpec(
        name=data["name"],
        namespace=data["namespace"],
        description=data.get("description", ""),
        labels=dict(data.get("labels") or {}),
        annotations=dict(data.get("annotations") or {}),
        params=dict(data.get("params") or {}),
        steps=tuple(_step_from(s) for s in data["steps"]),
        on_failure=tuple(_step_from(s) for s in data.get("on_failure") or ()),
        parallelism=data.get("parallelism"),
        schedule=None if schedule is None else parse_schedule(schedule),
        misfire=parse_misfire(data.get("misfire")),
        concurrency=data.get("concurrency", "allow"),
        max_active=data.get("max_active", 1),
        enabled=data.get("enabled", True),
        timeout=data.get("timeout"),
        retention=parse_retention(data.get("retention")),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Workflow:
    """A stored workflow: its spec plus what the store adds."""

    id: int
    spec: WorkflowSpec
    created_at: datetime
    updated_at: datetime
    next_run_at: datetime | None = None  # the next slot its schedule fires at, if enabled
    schedule_state: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.spec.ref
