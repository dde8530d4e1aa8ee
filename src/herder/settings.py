"""Server settings from ``HERDER_*`` environment variables and an optional ``.env`` file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from herder.model.durations import parse_duration

if TYPE_CHECKING:
    from herder.secret_keys import SecretKeys


class Settings(BaseSettings):
    """Every setting has a default that makes one ``herder server`` a complete installation."""

    model_config = SettingsConfigDict(
        env_prefix="HERDER_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(4004, ge=0, le=65535, description="port to listen on")
    data_dir: Path = Field(
        Path("herder-data"), description="folder for the SQLite file, logs and working folders"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the store; default: SQLite in the data folder"
    )
    kill_grace: float = Field(
        10.0, description="seconds between SIGTERM and SIGKILL when a run is cancelled"
    )
    default_timeout: float | None = Field(
        None, description="timeout for jobs that set none (e.g. '300s'); default: no limit"
    )
    dispatch_batch: int = Field(256, ge=1, le=1000, description="runs claimed per dispatch round")
    max_body: int = Field(
        1024 * 1024, ge=1024, description="largest request body accepted, in bytes"
    )
    sync_exit_records: bool = Field(
        False,
        description="flush each local run's end to disk before reporting it (survives a power "
        "loss; slower)",
    )
    log_level: str = Field("info", description="server log level")
    lease_ttl: float = Field(
        15.0,
        description="seconds a server's lease lasts unrenewed; after that, another server on "
        "the same PostgreSQL takes over its runs (e.g. '15s')",
    )

    retention_max_age: float | None = Field(
        None,
        description="prune ended runs and their logs older than this (e.g. '90d'), for jobs "
        "that set no retention; default: keep them",
    )
    retention_max_runs: int | None = Field(
        None, ge=1, description="keep at most this many ended runs per job; default: all"
    )

    prune_every: float = Field(
        300.0, description="how often ended runs are pruned by retention (e.g. '5m')"
    )
    admin_token: SecretStr | None = Field(
        None,
        description="a bootstrap credential accepted as an admin token for every namespace; "
        "setting it turns authentication on (at least 16 characters)",
    )
    allow_open: bool = Field(
        False,
        description="let a server on a non-loopback address run open (no tokens): anyone "
        "who reaches it may do anything",
    )

    secret_key: SecretStr | None = Field(
        None,
        description="the key that encrypts secrets (`herder secret new-key` makes one); every "
        "server of one database needs the same; default: the data folder's secret.key",
    )
    secret_key_file: Path | None = Field(
        None, description="a file holding that key on its first line (older keys below it)"
    )
    secret_old_keys: SecretStr | None = Field(
        None, description="older keys, comma-separated, still accepted to read secrets"
    )
    bundle_max_size: int = Field(
        64 * 1024 * 1024, ge=1024, description="largest bundle archive accepted, in bytes"
    )
    bundle_max_unpacked: int = Field(
        512 * 1024 * 1024, ge=1024, description="most bytes a bundle may unpack to"
    )
    bundle_max_entries: int = Field(10_000, ge=1, description="most entries in a bundle")
    bundle_max_ratio: int = Field(
        200, ge=2, description="most times a bundle may expand its own size (beyond 1 MiB)"
    )
    run_file_max_size: int = Field(
        16 * 1024 * 1024, ge=1, description="largest input file attached to a run, in bytes"
    )
    run_files_max: int = Field(32, ge=1, description="most input files per run")
    run_files_max_total: int = Field(
        64 * 1024 * 1024, ge=1, description="most bytes of input files per run"
    )

    @field_validator("kill_grace", "default_timeout", "lease_ttl", "retention_max_age",
                     "prune_every", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        if value is None or value == "":
            return None
        if isinstance(value, str | int | float):
            return parse_duration(value)
        return value

    def secret_keys(self) -> SecretKeys:
        """The keys of secrets, read when first needed."""
        from herder.secret_keys import SecretKeys

        return SecretKeys(
            key=self.secret_key.get_secret_value() if self.secret_key else None,
            key_file=self.secret_key_file,
            old_keys=self.secret_old_keys.get_secret_value() if self.secret_old_keys else None,
            data_dir=self.data_dir.resolve(),
        )

    @field_validator("admin_token", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("admin_token")
    @classmethod
    def _admin_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters (e.g. from `openssl rand -hex 32`)")
        return value

    @property
    def store_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'herder.db'}"
