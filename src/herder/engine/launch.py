"""What a run sees: its argv, its environment and its folders, built from the stored run."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Connection

from herder.backends.base import RunContext
from herder.engine import outputs
from herder.logs import LogStore
from herder.model import inputs
from herder.model.chains import upstream_context
from herder.model.errors import InvalidSpec, NotFound
from herder.model.jobs import JobSpec, render_run, run_context
from herder.model.runs import Run
from herder.model.variables import Values
from herder.store import runs as run_store

# Taken from the server's own environment; nothing else is inherited (no tokens, no DB URLs).
INHERITED = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR")


def param_env(params: dict[str, Any]) -> dict[str, str]:
    """One ``HERDER_PARAM_<NAME>`` per param; booleans as ``true``/``false``."""
    out = {}
    for name, value in params.items():
        if isinstance(value, bool):
            value = "true" if value else "false"
        out[f"HERDER_PARAM_{name.upper()}"] = str(value)
    return out


def build_env(
    run: Run, spec: JobSpec, work_dir: Path, *, job_env: dict[str, str],
    params: dict[str, Any],
) -> dict[str, str]:
    """Base variables, then the job's env, then run-time overrides, then the params, then
    herder's own (last, so nothing can shadow them); ``job_env`` and ``params`` as rendered
    (``render_run``)."""
    env = {name: os.environ[name] for name in INHERITED if name in os.environ}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.update(job_env)
    env.update(run.env)
    env.update(param_env(params))
    env.update(
        {
            "HERDER_RUN_ID": str(run.id),
            "HERDER_ATTEMPT": str(run.attempt),
            "HERDER_JOB": spec.name,
            "HERDER_NAMESPACE": spec.namespace,
            "HERDER_SCHEDULED_FOR": run.scheduled_for.isoformat() if run.scheduled_for else "",
            "HERDER_WORK_DIR": str(work_dir),
            # Not created ahead; ``>>`` creates it (see ``engine.outputs``).
            "HERDER_OUTPUT": str(work_dir / outputs.FILE_NAME),
            # Exists when the run was given input files (``engine.workspace``).
            "HERDER_INPUTS": str(work_dir / inputs.FOLDER),
        }
    )
    if run.workflow_run_id is not None:  # a workflow's step
        env["HERDER_WORKFLOW_RUN_ID"] = str(run.workflow_run_id)
        env["HERDER_STEP"] = run.step or ""
    if run.upstream_run_id is not None:  # a job chain's run: the run whose end started it
        env["HERDER_UPSTREAM_RUN"] = str(run.upstream_run_id)
    return env


def upstream_of(conn: Connection, run: Run) -> dict[str, Any] | None:
    """What a chained run's templates see as ``upstream`` (``model.chains``), read when it is
    launched; None for a run no chain started. ``InvalidSpec`` (the run then ends PROC_ERROR)
    when history retention has pruned the upstream run meanwhile."""
    if run.upstream_run_id is None:
        return None
    try:
        upstream = run_store.get(conn, run.upstream_run_id)
    except NotFound:
        raise InvalidSpec(
            f"upstream run {run.upstream_run_id} is no longer kept (history retention), so "
            "what it published cannot be given to this run"
        ) from None
    return upstream_context(run_id=upstream.id, job=upstream.job_ref,
                            status=upstream.status.value, outputs=upstream.outputs)


def template_context(
    run: Run, spec: JobSpec, values: Values, upstream: dict[str, Any] | None = None
) -> dict[str, Any]:
    """What templates see, except ``params`` (rendered first, from this context). A workflow's
    inline step also sees its step context (``steps``, ``workflow``, ``item``, and ``run`` as
    the workflow run), laid over the run's own."""
    return {
        **values.context(),
        **run_context(spec, run_id=run.id, attempt=run.attempt, scheduled_for=run.scheduled_for,
                      upstream=upstream),
        **(run.context or {}),
    }


def build_context(
    run: Run, data_dir: Path, logs: LogStore, values: Values, masks: tuple[str, ...], *,
    spec: JobSpec, upstream: dict[str, Any] | None = None,
) -> RunContext:
    """Render the params, the job's env and the command, and name the run's folders (the
    backend creates them where the run executes). Raises ``InvalidSpec`` for a template that
    cannot be rendered (the run then ends PROC_ERROR with that message). ``masks`` are the
    strings the backend hides in the run's logs (its secrets); ``spec`` is the run's frozen spec
    (``run.spec``, as the caller read it); ``upstream`` is what ``upstream_of`` read."""
    context = template_context(run, spec, values, upstream)
    argv, job_env, params = render_run(spec, run.params, context)
    work_dir = outputs.work_dir(data_dir, run.id)
    log_dir = logs.run_dir(run.id)
    return RunContext(
        run_id=run.id,
        attempt=run.attempt,
        namespace=spec.namespace,
        job=spec.name,
        argv=argv,
        env=build_env(run, spec, work_dir, job_env=job_env, params=params),
        work_dir=work_dir,
        log_dir=log_dir,
        metadata=spec.metadata,
        masks=masks,
    )
