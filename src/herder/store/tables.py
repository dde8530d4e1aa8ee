"""The schema, in SQLAlchemy Core. Alembic migrations produce exactly this (a test checks it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which has no time zones) too."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):  # pragma: no cover - SQLite returns str only via raw SQL
            value = datetime.fromisoformat(value)
        moment: datetime = value
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


# SQLite gives rowid aliases only to INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for run ids.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("labels", JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("run_count", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # The next slot of an enabled job's schedule; NULL otherwise.
    sa.Column("next_run_at", UTCDateTime, nullable=True),
    # When the scheduler plans that slot (``model.policies.plan_at``). It asks only for the jobs
    # whose moment has come (an index range), so idle jobs cost nothing.
    sa.Column("plan_at", UTCDateTime, nullable=True),
    # What the scheduler remembers between slots (engine.scheduler.State as JSON).
    sa.Column("schedule_state", JSON, nullable=True),
    sa.UniqueConstraint("namespace", "name"),
    sa.Index(None, "plan_at"),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("job_id", BigId, sa.ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True),
    sa.Column("namespace", sa.String(63), nullable=False),
    # A job's name; for a workflow's inline step (command, approval), the workflow's.
    sa.Column("job_name", sa.String(63), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("parent_id", BigId, nullable=True),
    # A job chain's run: the run whose end started it (``model.chains``); its retries keep it.
    sa.Column("upstream_run_id", BigId, nullable=True),
    sa.Column("submitter", sa.String(255), nullable=True),
    sa.Column("params", JSON, nullable=False),
    sa.Column("env", JSON, nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("backend", sa.String(32), nullable=False),
    sa.Column("node", sa.String(255), nullable=True),
    sa.Column("labels", JSON, nullable=False),
    sa.Column("exit_code", sa.Integer, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("scheduled_for", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("deadline_at", UTCDateTime, nullable=True),
    sa.Column("cancel_requested_at", UTCDateTime, nullable=True),
    sa.Column("cancel_force", sa.Boolean, nullable=False),
    sa.Column("stop_reason", sa.String(16), nullable=True),
    sa.Column("handle", JSON, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),
    # The owner's epoch when it claimed the run: a fencing token. Writes guarded by owner check
    # it too, so a server that was declared dead and taken over can no longer change the run.
    sa.Column("owner_epoch", sa.Integer, nullable=True),
    # Not dispatched before this moment (a retry's backoff, a schedule's jitter).
    sa.Column("not_before", UTCDateTime, nullable=True),
    # What the run published through $HERDER_OUTPUT (``model.outputs``), written with its end;
    # NULL when it published nothing. ``outputs_error`` says why a file was not kept.
    sa.Column("outputs", JSON, nullable=True),
    sa.Column("outputs_error", sa.Text, nullable=True),
    # A workflow's step run: which workflow run, which step, which foreach item (0 for a plain
    # step, -1 for a foreach step marked as a whole). ``context`` is what the step's templates
    # see beside the run's own (``steps``, ``workflow``, ``item``), laid over it at launch.
    # (No foreign key: SQLite cannot add one without rebuilding this table.)
    sa.Column("workflow_run_id", BigId, nullable=True),
    sa.Column("step", sa.String(63), nullable=True),
    sa.Column("item", sa.Integer, nullable=False, server_default="0"),
    sa.Column("context", JSON, nullable=True),
    # Who approved or rejected a run waiting for a person, and when.
    sa.Column("decided_by", sa.String(255), nullable=True),
    sa.Column("decided_at", UTCDateTime, nullable=True),
    sa.Index(None, "job_id", "id"),
    sa.Index(None, "job_id", "status"),
    # One chained run per (upstream run, follower job): an end cannot start a follower twice.
    sa.Index(
        "uq_runs_upstream_run_id_job_id", "upstream_run_id", "job_id", unique=True,
        sqlite_where=sa.text("trigger = 'chain'"), postgresql_where=sa.text("trigger = 'chain'"),
    ),
    # Searches: a job's runs by name (also once deleted), and "failed in the last day".
    sa.Index(None, "namespace", "job_name", "id"),
    sa.Index(None, "status", "created_at"),
    sa.Index(None, "namespace", "id"),
    sa.Index(None, "status", "id"),
    # Exactly one run per (job, scheduled slot, attempt); NULL slots (manual runs) never collide.
    sa.UniqueConstraint("job_id", "scheduled_for", "attempt"),
    # Exactly one run per step, item and attempt of a workflow run: two servers deciding at once
    # (or one deciding twice after a crash) cannot start a step twice.
    # (An index, not a constraint: SQLite adds an index without rebuilding the table.)
    sa.Index(None, "workflow_run_id", "step", "item", "attempt", unique=True),
)

# Job chains (``model.chains``): the follower job starts when a run of the upstream job ends as
# ``condition`` says. Written from the follower's ``after`` when it is saved; read at each run
# end by the upstream's id, so an end costs one indexed look-up, not a scan of every spec.
job_chains = sa.Table(
    "job_chains",
    metadata,
    sa.Column(
        "follower_id", BigId, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column(
        "upstream_id", BigId, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("condition", sa.String(8), nullable=False),  # success | failure | always
    sa.Index(None, "upstream_id"),
)

# One row per server identity (a data folder). A server holds a lease it renews; ``epoch`` grows
# each time the identity starts or is taken over, and is the fencing token its runs carry.
servers = sa.Table(
    "servers",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("epoch", sa.Integer, nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("data_dir", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("heartbeat_at", UTCDateTime, nullable=False),
    sa.Column("lease_until", UTCDateTime, nullable=False),
    sa.Column("stopped_at", UTCDateTime, nullable=True),
)

# A run's labels once more, a row each, for search: "runs labelled team=audit" reads this
# primary key newest first instead of every run's JSON (``bench/history.py``: 460 ms → 6 ms
# for a rare value at 1,000,000 runs). Written with the run; a run's labels never change.
run_labels = sa.Table(
    "run_labels",
    metadata,
    sa.Column("key", sa.String(320), primary_key=True),
    sa.Column("value", sa.String(63), primary_key=True),
    sa.Column(
        "run_id", BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Index(None, "run_id"),  # the cascade when runs are pruned
    sqlite_with_rowid=False,
)

# Workflow definitions (``model.workflows``), kept like jobs. The schedule columns mean what
# they mean for jobs; the scheduler plans workflows' slots from them once workflow runs exist.
workflows = sa.Table(
    "workflows",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("labels", JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("next_run_at", UTCDateTime, nullable=True),
    sa.Column("plan_at", UTCDateTime, nullable=True),
    sa.Column("schedule_state", JSON, nullable=True),
    sa.UniqueConstraint("namespace", "name"),
    sa.Index(None, "plan_at"),
)

# A run of a workflow. Its steps are runs (``runs.workflow_run_id``); this row keeps the spec frozen
# at start, the run-time flags (paused, cancel requested), the status ``decide`` last gave, and
# ``floors``: {step: attempt}, the runs of a step up to that attempt set aside by a retry.
workflow_runs = sa.Table(
    "workflow_runs",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column(
        "workflow_id", BigId, sa.ForeignKey("workflows.id", ondelete="SET NULL"), nullable=True
    ),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("workflow_name", sa.String(63), nullable=False),
    sa.Column("spec", JSON, nullable=False),
    sa.Column("params", JSON, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("trigger", sa.String(16), nullable=False),
    sa.Column("submitter", sa.String(255), nullable=True),
    sa.Column("scheduled_for", UTCDateTime, nullable=True),
    # Nesting: the workflow run whose step ``parent_step`` (item, attempt) this run is.
    sa.Column(
        "parent_run_id", BigId, sa.ForeignKey("workflow_runs.id", ondelete="CASCADE"),
        nullable=True,
    ),
    sa.Column("parent_step", sa.String(63), nullable=True),
    sa.Column("parent_item", sa.Integer, nullable=False),
    sa.Column("parent_attempt", sa.Integer, nullable=False),
    sa.Column("rerun_of", BigId, nullable=True),
    sa.Column("floors", JSON, nullable=False),
    # Grows by one with each step run created or ended (and each nested run started or ended):
    # a server that kept its steps' state in memory knows from it whether that is still true.
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("paused_at", UTCDateTime, nullable=True),
    sa.Column("cancel_requested_at", UTCDateTime, nullable=True),
    sa.Index(None, "workflow_id", "id"),
    sa.Index(None, "namespace", "id"),
    sa.Index(None, "status", "id"),
    # One run per scheduled slot; one child run per nested step, item and attempt.
    sa.UniqueConstraint("workflow_id", "scheduled_for"),
    sa.UniqueConstraint(
        "parent_run_id", "parent_step", "parent_item", "parent_attempt",
        name="uq_workflow_runs_parent",
    ),
)

# Variables and secrets, per namespace or global (namespace ``*``). A secret's ``ciphertext`` is
# its value encrypted with the key ``key_id`` names (``herder.secret_keys``); never the value.
def _scoped_values(table: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        table,
        metadata,
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("namespace", sa.String(63), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        *columns,
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("namespace", "name"),
    )


variables = _scoped_values("variables", sa.Column("value", sa.Text, nullable=False))
secrets = _scoped_values(
    "secrets",
    sa.Column("ciphertext", sa.Text, nullable=False),
    sa.Column("key_id", sa.String(32), nullable=False),
)

# Script bundles, one row per content (sha256 of the archive's bytes): every server on the same
# PostgreSQL unpacks the same bytes. ``files`` is the member list checked at upload
# (``bundles.archive.Member``), against which each unpacking is checked again.
bundles = sa.Table(
    "bundles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),
    sa.Column("entrypoint", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("unpacked_size", sa.BigInteger, nullable=False),
    sa.Column("files", JSON, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

# Input files attached to a run before it is dispatched; they go with the run.
run_files = sa.Table(
    "run_files",
    metadata,
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.PrimaryKeyConstraint("run_id", "name"),
)

# Namespaces: the tenancy boundary. ``default`` is made by the migration and always exists.
namespaces = sa.Table(
    "namespaces",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # ``model.policies.Retention`` as written, for the jobs of the namespace that set none.
    sa.Column("retention", JSON, nullable=True),
)

# API tokens. Only the SHA-256 of the secret is kept; a revoked token keeps its row, so that it
# answers "revoked" (not "unknown") and the audit trail can name it.
tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("namespace", sa.String(63), nullable=False),  # or "*": every namespace
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=True),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.Column("last_used_at", UTCDateTime, nullable=True),
    sa.Index(None, "namespace"),
)

# The audit trail: one row per change request, whatever its outcome. Nothing updates or deletes
# these rows (no route does).
audit = sa.Table(
    "audit",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("token_id", BigId, nullable=True),
    sa.Column("action", sa.String(64), nullable=False),
    sa.Column("method", sa.String(16), nullable=False),
    sa.Column("path", sa.String(1000), nullable=False),
    sa.Column("namespace", sa.String(63), nullable=True),
    sa.Column("object", sa.String(255), nullable=True),
    sa.Column("client", sa.String(64), nullable=True),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Index(None, "actor", "id"),
    sa.Index(None, "action", "id"),
    sa.Index(None, "namespace", "id"),
    sa.Index(None, "at"),
)

# Locks (``model.locks``): one row per lock a job of the namespace declares, with its slots.
locks = sa.Table(
    "locks",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("namespace", sa.String(63), nullable=False),
    sa.Column("name", sa.String(63), nullable=False),
    sa.Column("slots", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("namespace", "name"),
)

# Which jobs declare which lock: a lock's slots are agreed on by every job that names it.
job_locks = sa.Table(
    "job_locks",
    metadata,
    sa.Column("job_id", BigId, sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("lock_id", BigId, sa.ForeignKey("locks.id", ondelete="CASCADE"), primary_key=True),
    sa.Index(None, "lock_id"),
)

# A run's claim on a lock, keyed by (lock, run): a holder once ``granted_at`` is set, a waiter
# before (queued by run id). A run's claims are granted all together, and deleted when it ends.
lock_claims = sa.Table(
    "lock_claims",
    metadata,
    sa.Column("lock_id", BigId, sa.ForeignKey("locks.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("run_id", BigId, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("requested_at", UTCDateTime, nullable=False),
    sa.Column("granted_at", UTCDateTime, nullable=True),
    sa.Index(None, "run_id"),
)
