"""The rules a workflow follows as a graph, checked when it is saved.

* Step names are unique across ``steps`` and ``on_failure``.
* A need names a step of its own list: ``steps`` need ``steps``; ``on_failure`` steps (which
  run once the workflow has failed) need other ``on_failure`` steps. Unknown names are refused
  with the closest known one (``did you mean``); a step needed twice is refused.
* No cycles: ``cycle: a -> b -> c -> a``.
* No step that can never start. A ``success`` or ``failure`` need on ``x`` means ``x`` ran, so
  whatever ``x`` itself needed held as well; an ``always`` need does not (``x`` may have been
  skipped). A step whose needs, followed so, ask one step to both succeed and fail can never
  start (``c`` needs ``a`` to succeed and ``b`` to have run, where ``b`` runs only if ``a``
  failed). Every step kind can fail (an approval by being rejected, any step by its timeout),
  so a ``failure`` need is otherwise always reachable.
* Templates read only what will exist when the step starts: ``params.P`` for a declared param,
  ``steps.X.outputs.K`` (or ``steps.X.status``) for a step ``X`` among the step's needs,
  followed transitively (an ``on_failure`` step also sees every step of ``steps``), ``run.id``,
  ``run.attempt``, ``workflow.name``, ``workflow.namespace``, and ``item`` in a ``foreach``
  step. Each template is also rendered once with sample values, so a value used unquoted in a
  shell string is refused now, by the rule of ``model.templates``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from herder.model import templates
from herder.model.errors import InvalidSpec
from herder.model.workflows import Step, WorkflowSpec

RUN_FIELDS = ("id", "attempt")
WORKFLOW_FIELDS = ("name", "namespace")
STEP_FIELDS = ("outputs", "status")


def _where(spec: WorkflowSpec, name: str) -> str:
    for section in ("steps", "on_failure"):
        for i, step in enumerate(getattr(spec, section)):
            if step.name == name:
                return f"{section}[{i}]"
    raise KeyError(name)


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _names(spec: WorkflowSpec) -> None:
    seen: dict[str, str] = {}
    for section in ("steps", "on_failure"):
        for i, step in enumerate(getattr(spec, section)):
            if step.name in seen:
                raise InvalidSpec(
                    f"{section}[{i}].name: {step.name!r} is already the name of "
                    f"{seen[step.name]}; step names are unique in a workflow"
                )
            seen[step.name] = f"{section}[{i}]"


def _needs(spec: WorkflowSpec) -> None:
    main = [s.name for s in spec.steps]
    handlers = [s.name for s in spec.on_failure]
    for section, own, other in (("steps", main, handlers), ("on_failure", handlers, main)):
        for i, step in enumerate(getattr(spec, section)):
            seen: dict[str, int] = {}
            for j, need in enumerate(step.needs):
                at = f"{section}[{i}].needs[{j}]"
                if need.step in other:
                    why = (
                        "steps cannot need an on_failure step (it runs only once the workflow "
                        "has failed)" if section == "steps" else
                        "on_failure steps run once the workflow has failed, so they need only "
                        "other on_failure steps"
                    )
                    raise InvalidSpec(f"{at}: {need.step!r} is {_other(section)} step; {why}")
                if need.step not in own:
                    raise InvalidSpec(
                        f"{at}: unknown step {need.step!r}{_suggest(need.step, own)}"
                    )
                if need.step in seen:
                    raise InvalidSpec(
                        f"{at}: {need.step!r} is needed already (needs[{seen[need.step]}]); "
                        "give each step once, with one condition"
                    )
                seen[need.step] = j


def _other(section: str) -> str:
    return "an on_failure" if section == "steps" else "a main"


def order(spec: WorkflowSpec, steps: tuple[Step, ...]) -> list[Step]:
    """``steps`` so that each comes after those it needs (declaration order otherwise); a
    cycle is refused with its path."""
    by_name = {s.name: s for s in steps}
    state: dict[str, int] = {}  # 1: being visited, 2: done
    done: list[Step] = []
    trail: list[str] = []

    def visit(step: Step) -> None:
        state[step.name] = 1
        trail.append(step.name)
        for need in step.needs:
            target = by_name.get(need.step)
            if target is None:
                continue
            if state.get(target.name) == 1:
                loop = [*trail[trail.index(target.name):], target.name]
                section = "steps" if step in spec.steps else "on_failure"
                raise InvalidSpec(
                    f"{section}: cycle: {' -> '.join(loop)}; a step cannot wait, "
                    "through its needs, for itself"
                )
            if target.name not in state:
                visit(target)
        trail.pop()
        state[step.name] = 2
        done.append(step)

    for step in steps:
        if step.name not in state:
            visit(step)
    return done


def _reachable(spec: WorkflowSpec, ordered: list[Step]) -> None:
    """Refuse a step whose inherited conditions ask a step to both succeed and fail."""
    inherited: dict[str, dict[str, str]] = {}  # step -> {x: how x must have ended}
    for step in ordered:
        conditions: dict[str, str] = {}
        through: dict[str, str] = {}  # x -> the need it came through (for the message)
        for need in step.needs:
            if need.on == "always":
                continue
            upstream = inherited[need.step]
            if conditions:  # a second need: the only place two conditions can disagree
                for x, on in (*upstream.items(), (need.step, need.on)):
                    if conditions.get(x, on) != on:
                        raise InvalidSpec(
                            f"{_where(spec, step.name)}.needs: {step.name!r} can never start: "
                            f"it needs {x!r} to {_verb(conditions[x])} (through "
                            f"{through[x]!r}) and to {_verb(on)} (through {need.step!r})"
                        )
                    through.setdefault(x, need.step)
            else:
                through = dict.fromkeys(upstream, need.step)
                through[need.step] = need.step
            conditions = {**upstream, **conditions, need.step: need.on}
        inherited[step.name] = conditions


def _verb(on: str) -> str:
    return "succeed" if on == "success" else "fail"


def visible_steps(spec: WorkflowSpec, step: Step) -> set[str]:
    """The steps whose outputs ``step``'s templates may read: its needs, transitively; an
    on_failure step also sees every main step (all have ended when it starts)."""
    known = spec.memo.get("visibility")
    if known is not None:
        return set(known[step.name])
    by_name = {s.name: s for s in (*spec.steps, *spec.on_failure)}
    seen: set[str] = set()
    todo = [n.step for n in step.needs]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(n.step for n in by_name[name].needs)
    if any(s.name == step.name for s in spec.on_failure):
        seen.update(s.name for s in spec.steps)
    return seen


def reads_steps(spec: WorkflowSpec, step: Step) -> frozenset[str] | None:
    """The steps ``step``'s templates name (``steps.X…``), or None when one reads ``steps``
    as a whole: a step run is given only these (a chain of a thousand steps would otherwise
    copy every earlier step's outputs into each run). Memoized on the spec."""
    memo: dict[str, frozenset[str] | None] = spec.memo.setdefault("reads", {})
    if step.name in memo:
        return memo[step.name]
    texts: list[tuple[str, bool]] = [(v, False) for v in step.params.values()
                                     if isinstance(v, str)]
    texts += [(v, False) for v in step.env.values()]
    if isinstance(step.command, str):
        texts.append((step.command, True))
    elif step.command is not None:
        texts += [(a, False) for a in step.command]
    if isinstance(step.foreach, str):
        texts.append((step.foreach, False))
    found: set[str] | None = set()
    for text, shell in texts:
        for chain in templates.name_chains(text, shell=shell):
            if chain[0] != "steps":
                continue
            if len(chain) < 2 or found is None:
                found = None
                break
            found.add(chain[1])
    memo[step.name] = None if found is None else frozenset(found)
    return memo[step.name]


def visibility(spec: WorkflowSpec) -> dict[str, frozenset[str]]:
    """``visible_steps`` of every step at once, in dependency order (a graph of a thousand
    steps is checked in one pass, not a walk per step)."""
    seen: dict[str, frozenset[str]] = {}
    main = frozenset(s.name for s in spec.steps)
    for steps, base in ((spec.steps, frozenset[str]()), (spec.on_failure, main)):
        for step in order(spec, steps):
            seen[step.name] = base.union(*(seen[n.step] | {n.step} for n in step.needs))
    return seen


def _check_reference(
    chain: tuple[str, ...], *, params: Iterable[str], steps: frozenset[str], item: bool
) -> str | None:
    """What is wrong with one name a template reads, or None."""
    root, rest = chain[0], chain[1:]
    if root == "params":
        known = sorted(params)
        if rest and rest[0] not in known:
            return (f"unknown param {rest[0]!r}{_suggest(rest[0], known)}; the workflow declares"
                    f" {', '.join(known) or 'none'}")
        return None
    if root == "steps":
        if not rest:
            return None
        if rest[0] not in steps:
            return (
                f"{'.'.join(chain[:2])}: {rest[0]!r} is not among this step's needs "
                f"(direct or through other steps){_suggest(rest[0], steps)}, so its outputs "
                "are not known when it starts; add it to needs"
            )
        if len(rest) > 1 and rest[1] not in STEP_FIELDS:
            return (f"{'.'.join(chain[:3])}: a step has {' and '.join(STEP_FIELDS)}"
                    f"{_suggest(rest[1], STEP_FIELDS)}")
        return None
    fields = {"run": RUN_FIELDS, "workflow": WORKFLOW_FIELDS}.get(root)
    if fields is not None:
        if rest and rest[0] not in fields:
            return f"{root}.{rest[0]}: unknown; {root} has {', '.join(fields)}"
        return None
    if root == "item":
        return None if item else "item: only a foreach step has an item"
    return (f"unknown name {root!r}; templates here read params, steps, run, workflow"
            + (" and item" if item else ""))


class _Sample(dict[str, Any]):
    """Any output a step may publish, as a sample string (so the quoting rule is checked)."""

    def __missing__(self, key: str) -> str:
        return "sample"


class _SampleSteps(dict[str, Any]):
    """The steps a template may read, each with sample outputs, made only when read."""

    def __init__(self, names: frozenset[str]) -> None:
        super().__init__()
        self.names = names

    def __missing__(self, key: str) -> dict[str, Any]:
        if key not in self.names:
            raise KeyError(key)
        return {"outputs": _Sample(), "status": "SUCCESS"}


def _sample_context(spec: WorkflowSpec, step: Step, steps: frozenset[str]) -> dict[str, Any]:
    return {
        "params": {**spec.params, **(step.params if step.kind == "command" else {})},
        "steps": _SampleSteps(steps),
        "run": {"id": 1, "attempt": 1},
        "workflow": {"name": spec.name, "namespace": spec.namespace},
        "item": "item",
    }


def _templates(spec: WorkflowSpec, step: Step, where: str, steps: frozenset[str]) -> None:
    own = set(spec.params) | (set(step.params) if step.kind == "command" else set())
    looped = step.foreach is not None
    fields: list[tuple[str, str, bool, set[str], bool]] = []  # where, text, shell, params, item
    fields += [(f"params.{k}", v, False, set(spec.params), looped)
               for k, v in step.params.items() if isinstance(v, str)]
    fields += [(f"env.{k}", v, False, own, looped) for k, v in step.env.items()]
    if isinstance(step.command, str):
        fields.append(("command", step.command, True, own, looped))
    elif step.command is not None:
        fields += [(f"command[{i}]", a, False, own, looped) for i, a in enumerate(step.command)]
    if isinstance(step.foreach, str):
        fields.append(("foreach", step.foreach, False, set(spec.params), False))
    context = _sample_context(spec, step, steps)
    for field, text, shell, params, item in fields:
        at = f"{where}.{field}"
        for chain in templates.name_chains(text, shell=shell):
            problem = _check_reference(chain, params=params, steps=steps, item=item)
            if problem is not None:
                raise InvalidSpec(f"{at}: {problem}")
        if field != "foreach":
            try:
                templates.render(text, context, shell=shell)
            except InvalidSpec as exc:
                raise InvalidSpec(f"{at}: {exc.message}") from None


def check(spec: WorkflowSpec) -> None:
    """Every rule of the module docstring; the first broken one is raised with its path."""
    _names(spec)
    _needs(spec)
    for steps in (spec.steps, spec.on_failure):
        _reachable(spec, order(spec, steps))
    seen = visibility(spec)
    for section in ("steps", "on_failure"):
        for i, step in enumerate(getattr(spec, section)):
            _templates(spec, step, f"{section}[{i}]", seen[step.name])


def dependents(spec: WorkflowSpec) -> Mapping[str, list[str]]:
    """For each step, the steps that need it directly."""
    found: dict[str, list[str]] = {s.name: [] for s in (*spec.steps, *spec.on_failure)}
    for step in (*spec.steps, *spec.on_failure):
        for need in step.needs:
            found[need.step].append(step.name)
    return found
