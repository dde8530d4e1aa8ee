"""The decision function's share of a workflow step's overhead, in memory (no server).

The engine will call ``model.workflow_runs.decide`` once per step run that ends; this drives a
100-step chain and a 1,000-wide fan-out of ``true`` steps the same way (decide, apply the
starts, end one step run, decide again) and prints the time per step. The whole per-step budget
(``bench/workflow_overhead.py``, with the engine, to come) is 2 ms.

    .venv/bin/python bench/workflow_decide.py [--width 1000] [--chain 100]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from herder.model.runs import RunStatus
from herder.model.workflow_runs import decide
from herder.model.workflow_state import StepState, WorkflowStatus
from herder.model.workflows import WorkflowSpec, parse_workflow

DONE = StepState(status=RunStatus.SUCCESS, attempt=1)
READY = StepState(status=RunStatus.READY, attempt=1)


def drive(spec: WorkflowSpec) -> tuple[int, float]:
    """Run ``spec`` to its end, ending the oldest started run each round; (runs, seconds spent
    in ``decide``)."""
    states: dict[str, StepState] = {}
    items: dict[str, dict[int, StepState]] = {}
    started: list[tuple[str, int | None]] = []
    ended = 0
    spent = 0.0
    while True:
        began = time.perf_counter()
        decision = decide(spec, states)
        spent += time.perf_counter() - began
        for start in decision.start:
            started.append((start.step, start.item))
            if start.item is None:
                states[start.step] = READY
            else:
                items.setdefault(start.step, {})[start.item] = READY
                states[start.step] = StepState(items=items[start.step])
        if decision.status is WorkflowStatus.SUCCESS:
            return ended, spent
        step, item = started[ended]
        ended += 1
        if item is None:
            states[step] = DONE
        else:
            items[step] = {**items[step], item: DONE}
            states[step] = StepState(items=items[step])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", type=int, default=100)
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args()
    chain: list[dict[str, Any]] = [{"name": "s0", "command": "true"}]
    chain += [{"name": f"s{i}", "command": "true", "needs": [f"s{i - 1}"]}
              for i in range(1, args.chain)]
    fan = [{"name": "each", "command": ["true", "{{ item }}"],
            "foreach": list(range(args.width)), "parallelism": 50}]
    for label, steps in ((f"{args.chain}-step chain", chain), (f"{args.width}-wide fan-out", fan)):
        spec = parse_workflow({"name": "bench", "steps": steps})
        runs, seconds = drive(spec)
        print(f"{label}: {runs} step runs, decide {seconds * 1000:.1f} ms in all, "
              f"{seconds / runs * 1e6:.0f} µs per step")


if __name__ == "__main__":
    main()
