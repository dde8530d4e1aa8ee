"""Jobs: what to run, where and how. The rules every job spec follows, checked on the way in."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from herder.model import templates
from herder.model.chains import NO_UPSTREAM, Follow, parse_after, sample_upstream
from herder.model.errors import InvalidSpec
from herder.model.locks import LockUse, parse_locks
from herder.model.policies import Concurrency, Retention, Retries, parse_retention, parse_retries
from herder.model.schedules import Misfire, Schedule, parse_misfire, parse_schedule

NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
PARAM_RE = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
LABEL_KEY_RE = re.compile(
    r"([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?"  # an optional DNS prefix, as Kubernetes has
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
)
LABEL_VALUE_RE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")

# Variables a run's caller may never set: they change how every program or shell behaves.
RESERVED_ENV = frozenset(
    {"PATH", "BASH_ENV", "ENV", "IFS", "SHELLOPTS", "BASHOPTS", "PS4", "PYTHONSTARTUP",
     "PYTHONPATH", "PERL5OPT", "NODE_OPTIONS", "HOME", "SHELL"}
)
RESERVED_PREFIXES = ("LD_", "HERDER_", "DYLD_")
DEFAULT_NAMESPACE = "default"
MAX_VALUE = 64 * 1024
MAX_METADATA = 64 * 1024
SHELL = "/bin/sh"


def check_name(value: str, *, what: str = "name") -> str:
    """A DNS-label-like name: lowercase letters, digits and '-', starting with a letter."""
    if not isinstance(value, str) or not value:
        raise InvalidSpec(f"{what}: must not be empty")
    if len(value) > 63:
        raise InvalidSpec(f"{what}: at most 63 characters (got {len(value)})")
    if not NAME_RE.fullmatch(value):
        raise InvalidSpec(
            f"{what}: {value!r} is not a valid name; use lowercase letters, digits and '-', "
            "starting with a letter and not ending with '-'"
        )
    return value


def is_reserved_env(name: str) -> bool:
    upper = name.upper()
    return upper in RESERVED_ENV or upper.startswith(RESERVED_PREFIXES)


def check_param_name(name: str) -> str:
    if not PARAM_RE.fullmatch(name):
        raise InvalidSpec(
            f"params: {name[:70]!r} is not a valid param name; use letters, digits and '_', "
            "starting with a letter, at most 64 characters"
        )
    if is_reserved_env(name):
        raise InvalidSpec(f"params: {name!r} would shadow a reserved variable")
    return name


def check_value(value: object, *, where: str) -> str | int | float | bool:
    """Param values are JSON scalars; they end up in an environment, so no NUL bytes."""
    if isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if "\x00" in value:
            raise InvalidSpec(f"{where}: NUL bytes are not allowed")
        if len(value) > MAX_VALUE:
            raise InvalidSpec(f"{where}: longer than 64 KiB")
        return value
    raise InvalidSpec(f"{where}: must be a string, a number or a boolean")


def check_params(params: Mapping[str, Any], *, templates_allowed: bool = False) -> dict[str, Any]:
    """Param names and values; a job's defaults (``templates_allowed``) may be templates, which
    are checked here (values given for one run are used as they are, never rendered)."""
    seen: dict[str, str] = {}
    for name in params:
        check_param_name(name)
        if name.upper() in seen:
            raise InvalidSpec(f"params: {name!r} and {seen[name.upper()]!r} differ only by case")
        seen[name.upper()] = name
    checked = {name: check_value(v, where=f"params.{name}") for name, v in params.items()}
    if templates_allowed:
        for name, value in checked.items():
            if isinstance(value, str):
                _check_template(value, where=f"params.{name}")
    return checked


def _check_template(text: str, *, where: str) -> None:
    try:
        templates.check(text, shell=False)
    except InvalidSpec as exc:
        raise InvalidSpec(f"{where}: {exc.message}", details=exc.details) from None


def check_env(env: Mapping[str, Any], *, allow_reserved: bool) -> dict[str, str]:
    """Job env may set PATH and friends (an editor's choice); run-time overrides may not."""
    out: dict[str, str] = {}
    for name, value in env.items():
        if not ENV_RE.fullmatch(name):
            raise InvalidSpec(f"env: {name[:70]!r} is not a valid variable name")
        upper = name.upper()
        if upper.startswith("HERDER_") or (not allow_reserved and is_reserved_env(name)):
            raise InvalidSpec(f"env: {name!r} is reserved and cannot be set here")
        if not isinstance(value, str):
            raise InvalidSpec(f"env.{name}: must be a string")
        check_value(value, where=f"env.{name}")
        if allow_reserved:  # a job's env is rendered; a run's overrides are used as they are
            _check_template(value, where=f"env.{name}")
        out[name] = value
    return out


def check_labels(labels: Mapping[str, Any], *, what: str = "labels") -> dict[str, str]:
    if len(labels) > 64:
        raise InvalidSpec(f"{what}: at most 64 entries")
    for key, value in labels.items():
        if not LABEL_KEY_RE.fullmatch(key):
            raise InvalidSpec(f"{what}: {key[:70]!r} is not a valid key")
        if not isinstance(value, str) or not LABEL_VALUE_RE.fullmatch(value):
            raise InvalidSpec(
                f"{what}.{key}: values are at most 63 letters, digits, '-', '_' or '.'"
            )
    return dict(labels)


def check_annotations(annotations: Mapping[str, Any]) -> dict[str, str]:
    total = 0
    for key, value in annotations.items():
        if not LABEL_KEY_RE.fullmatch(key):
            raise InvalidSpec(f"annotations: {key[:70]!r} is not a valid key")
        if not isinstance(value, str):
            raise InvalidSpec(f"annotations.{key}: must be a string")
        total += len(key) + len(value)
    if total > MAX_METADATA:
        raise InvalidSpec("annotations: larger than 64 KiB in all")
    return dict(annotations)


def check_command(command: object) -> list[str] | str:
    """An argv list (run as is) or a shell string (run by /bin/sh -c)."""
    if isinstance(command, str):
        if not command.strip():
            raise InvalidSpec("command: must not be empty")
        if "\x00" in command or len(command) > MAX_VALUE:
            raise InvalidSpec("command: no NUL bytes, at most 64 KiB")
        templates.check(command, shell=True)
        return command
    if isinstance(command, list):
        if not command:
            raise InvalidSpec("command: an argv list needs at least the program")
        if not all(isinstance(a, str) for a in command):
            raise InvalidSpec("command: every argv element must be a string")
        if not command[0]:
            raise InvalidSpec("command: the program (first element) must not be empty")
        if sum(len(a) for a in command) > MAX_VALUE or any("\x00" in a for a in command):
            raise InvalidSpec("command: no NUL bytes, at most 64 KiB in all")
        for arg in command:
            templates.check(arg, shell=False)
        return list(command)
    raise InvalidSpec("command: expected an argv list or a shell string")


BUNDLE_ID_RE = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Script:
    """An uploaded bundle to run instead of a command: its id (sha256) and the file to start
    (``None``: the bundle's own entry point, looked up when a run starts). Checked against the
    bundle when the job is saved (``store.bundles.check_script``)."""

    bundle: str
    entrypoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.bundle, "entrypoint": self.entrypoint}


def parse_script(value: object) -> Script:
    if not isinstance(value, Mapping):
        raise InvalidSpec("script: expected {bundle: <id>, entrypoint: script.sh}")
    unknown = sorted(set(value) - {"bundle", "entrypoint"})
    if unknown:
        raise InvalidSpec(f"script: unknown field {unknown[0]!r}; expected bundle, entrypoint")
    bundle = value.get("bundle")
    if not isinstance(bundle, str) or not BUNDLE_ID_RE.fullmatch(bundle.lower()):
        raise InvalidSpec(
            "script.bundle: expected a bundle id (the 64 hex digits of its sha256, as "
            "`herder bundle upload` answers)"
        )
    entrypoint = value.get("entrypoint")
    if entrypoint is not None and (
        not isinstance(entrypoint, str) or not entrypoint or len(entrypoint) > 255
        or "\x00" in entrypoint
    ):
        raise InvalidSpec("script.entrypoint: a file of the bundle, e.g. script.sh")
    return Script(bundle=bundle.lower(), entrypoint=entrypoint)


def script_argv(entrypoint: str) -> list[str]:
    """How a run starts its bundle's entry point, from inside the unpacked folder: a ``.sh``
    file with ``bash``, anything else executed itself."""
    if entrypoint.endswith(".sh"):
        return ["bash", entrypoint]
    return [f"./{entrypoint}"]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """A job definition as the engine uses it. Built from a validated API or manifest body."""

    name: str
    namespace: str = DEFAULT_NAMESPACE
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    command: list[str] | str | None = None  # exactly one of command and script
    script: Script | None = None
    env: dict[str, str] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    backend: str = "local"
    timeout: float | None = None
    enabled: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    schedule: Schedule | None = None
    misfire: Misfire = field(default_factory=Misfire)
    concurrency: Concurrency = "allow"
    max_active: int = 1
    retries: Retries | None = None
    retention: Retention = field(default_factory=Retention)
    locks: tuple[LockUse, ...] = ()  # see model.locks
    after: tuple[Follow, ...] = ()  # job chains, see model.chains

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in the store and answered by the API."""
        return {
            "name": self.name,
            "namespace": self.namespace,
            "description": self.description,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "command": self.command if not isinstance(self.command, list) else list(self.command),
            "script": None if self.script is None else self.script.to_dict(),
            "env": dict(self.env),
            "params": dict(self.params),
            "backend": self.backend,
            "timeout": self.timeout,
            "enabled": self.enabled,
            "metadata": self.metadata,
            "schedule": None if self.schedule is None else self.schedule.to_dict(),
            "misfire": self.misfire.to_dict(),
            "concurrency": self.concurrency,
            "max_active": self.max_active,
            "retries": None if self.retries is None else self.retries.to_dict(),
            "retention": self.retention.to_dict() or None,
            "locks": [use.to_dict() for use in self.locks],
            "after": [follow.to_dict() for follow in self.after],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """Read back what ``to_dict`` wrote (it was validated on the way in)."""
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        if fields.get("schedule") is not None:
            fields["schedule"] = parse_schedule(fields["schedule"])
        fields["misfire"] = parse_misfire(fields.get("misfire"))
        fields["retries"] = parse_retries(fields.get("retries"))
        fields["retention"] = parse_retention(fields.get("retention"))
        if fields.get("script") is not None:
            fields["script"] = parse_script(fields["script"])
        fields["locks"] = parse_locks(fields.get("locks"))
        fields["after"] = parse_after(
            fields.get("after"), namespace=fields.get("namespace", DEFAULT_NAMESPACE),
            name=fields["name"],
        )
        return cls(**fields)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A stored job: its spec plus what the store adds."""

    id: int
    spec: JobSpec
    created_at: Any
    updated_at: Any
    run_count: int = 0
    next_run_at: datetime | None = None  # the next slot its schedule fires at, if enabled
    schedule_state: dict[str, Any] = field(default_factory=dict)  # see engine.scheduler

    @property
    def ref(self) -> str:
        return f"{self.spec.namespace}/{self.spec.name}"


def next_run(job: Job, now: datetime) -> datetime | None:
    """When the job runs next, as people ask: a slot planned ahead (its run made early) until it
    has come, then the next slot the scheduler will plan (``next_slot`` in its state)."""
    shown = job.next_run_at
    following = job.schedule_state.get("next_slot")
    if shown is not None and shown < now and following:
        return datetime.fromisoformat(following)
    return shown


def render_command(
    spec: JobSpec, context: Mapping[str, Any]
) -> list[str]:
    """The argv to execute: templates rendered, a shell string wrapped in ``/bin/sh -c``; a
    script's entry point as ``script_argv`` says."""
    if spec.script is not None:  # the engine replaces it when the bundle names its own
        return script_argv(spec.script.entrypoint or "script.sh")
    if spec.command is None:
        raise InvalidSpec("a job needs a command or a script")
    if isinstance(spec.command, str):
        return [SHELL, "-c", templates.render(spec.command, context, shell=True)]
    return [templates.render(arg, context, shell=False) for arg in spec.command]


def render_params(
    spec: JobSpec, params: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any]:
    """The params as the run sees them. A value that is still the job's default is rendered
    (it may name ``vars`` and ``secrets``, not other params); a value given for this run is
    used as it is, so a caller who may run a job cannot make it reveal a secret."""
    out = {}
    for name, value in params.items():
        if isinstance(value, str) and value == spec.params.get(name):
            value = templates.render(value, context, shell=False)
        out[name] = value
    return out


def render_env(spec: JobSpec, context: Mapping[str, Any]) -> dict[str, str]:
    """The job's env values, rendered (they may name params, vars and secrets)."""
    return {name: templates.render(v, context, shell=False) for name, v in spec.env.items()}


def _users_refs(spec: JobSpec) -> templates.Refs:
    """What the command (a script has none) and the env name."""
    if isinstance(spec.command, str):
        refs = templates.references(spec.command, shell=True)
    else:
        refs = templates.NO_REFS
        for arg in spec.command or ():
            refs |= templates.references(arg)
    for value in spec.env.values():
        refs |= templates.references(value)
    return refs


def references(spec: JobSpec) -> templates.Refs:
    """Every variable and secret the job's templates name (command, env, param defaults).

    A param whose default names a secret holds that secret: it may only be written out as it
    is, like the secret, so that its value is what reaches the run (and is masked)."""
    refs = _users_refs(spec)
    holding = set()
    for name, value in spec.params.items():
        if isinstance(value, str):
            found = templates.references(value)
            refs |= found
            if found.secrets:
                holding.add(name)
    if holding and refs.params_dynamic:
        raise InvalidSpec(
            f"params: {sorted(holding)[0]!r} holds a secret, so params may only be named "
            "literally ({{ params.NAME }}) in this job"
        )
    changed = sorted(holding & refs.params_changed)
    if changed:
        raise InvalidSpec(
            f"params.{changed[0]}: holds a secret, so it may only be written as "
            f"{{{{ params.{changed[0]} }}}} or {{{{ params.{changed[0]} | shell_quote }}}}"
        )
    return refs


def sample_values(refs: templates.Refs) -> dict[str, Any]:
    """Stand-in ``vars`` and ``secrets`` holding every name ``refs`` names."""
    return {
        "vars": templates.Scope("variable", dict.fromkeys(refs.vars, "sample")),
        "secrets": templates.Scope("secret", dict.fromkeys(refs.secrets, "sample-secret")),
    }


def render_run(
    spec: JobSpec, params: Mapping[str, Any], context: Mapping[str, Any]
) -> tuple[list[str], dict[str, str], dict[str, Any]]:
    """Render a run: its argv, its job env and its params, from ``context`` (``run``, ``job``,
    ``vars``, ``secrets``; ``params`` is added here once rendered)."""
    rendered = render_params(spec, params, context)
    full = {**context, "params": rendered}
    return render_command(spec, full), render_env(spec, full), rendered


def run_context(
    spec: JobSpec, *, run_id: int, attempt: int, scheduled_for: datetime | None,
    upstream: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """What templates see of the run and its job (``run.id``, ``job.name``, …): one shape
    for the runs and for the check on save. A job with ``after`` also sees ``upstream``, the
    run that started this one (``model.chains``; empty for a run not started by a chain)."""
    context: dict[str, Any] = {
        "run": {
            "id": run_id,
            "attempt": attempt,
            "scheduled_for": scheduled_for.isoformat() if scheduled_for else "",
        },
        "job": {"name": spec.name, "namespace": spec.namespace},
    }
    if spec.after or upstream is not None:
        context["upstream"] = dict(upstream) if upstream is not None else dict(NO_UPSTREAM)
    return context


def check_renders(spec: JobSpec) -> None:
    """Render the command once with the job's own param defaults, so a template that can never
    work (an unknown param, a value used unquoted in a shell) is refused when the job is saved.
    Variables and secrets are stood in for here; whether they exist is the store's to say."""
    upstream = sample_upstream() if spec.after else None
    sample = {
        **run_context(spec, run_id=1, attempt=1, scheduled_for=None, upstream=upstream),
        **sample_values(references(spec)),
    }
    try:
        render_run(spec, spec.params, sample)
    except InvalidSpec as exc:
        if spec.after or "'upstream' is undefined" not in exc.message:
            raise
        raise InvalidSpec(
            "template error: 'upstream' is known only to a job that follows another (after:, "
            "see job chains)"
        ) from None


def merge_params(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """Run-time params: the job's defaults, overridden by name; unknown names are refused."""
    unknown = sorted(set(overrides) - set(defaults))
    if unknown:
        known = ", ".join(sorted(defaults)) or "none"
        raise InvalidSpec(
            f"params: unknown param {unknown[0]!r}; this job declares: {known}",
            details={"unknown": unknown},
        )
    merged = dict(defaults)
    merged.update(check_params(overrides))
    return merged
