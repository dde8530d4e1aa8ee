"""The variables and secrets one run uses: looked up for its namespace, secrets decrypted, and
the ``Masker`` that hides their values in what the run leaves behind.

Only the names a run's templates name are loaded (``model.jobs.references``), and nothing at
all for a run that names none, so runs without templates cost no extra query. The values live
in memory only, for as long as the run is followed; the run row keeps the templates.
"""

from __future__ import annotations

import asyncio

from herder.masking import Masker, forms
from herder.model.jobs import JobSpec, references
from herder.model.runs import Run
from herder.model.templates import Refs
from herder.model.variables import NO_VALUES, Values, undefined
from herder.secret_keys import SecretKeys
from herder.store import variables as variable_store
from herder.store.database import Database

NO_MASK = Masker(())


async def load(db: Database, keys: SecretKeys, spec: JobSpec) -> Values:
    """The values a run of ``spec`` (its frozen spec) names, as its namespace sees them;
    ``InvalidSpec`` names what is not defined, ``SecretKeyError`` says why a secret cannot be
    decrypted."""
    refs = references(spec)
    if not refs.values:
        return NO_VALUES
    found_vars, sealed = await db.read(variable_store.resolve, spec.namespace, refs)
    problem = undefined(refs, found_vars, sealed, namespace=spec.namespace,
                        then="retry the run")
    if problem is not None:
        raise problem
    # AES-GCM of a few short values is microseconds, but the key file may be read (and
    # created) on first use: off the event loop.
    opened = await asyncio.to_thread(_decrypt, keys, sealed)
    return Values(namespace=spec.namespace, vars=found_vars, secrets=opened)


def _decrypt(keys: SecretKeys, sealed: dict[str, tuple[str, str]]) -> dict[str, str]:
    return {name: keys.decrypt(namespace, name, data) for name, (namespace, data) in
            sealed.items()}


def masker(values: Values) -> Masker:
    return Masker(forms(values.secrets.values())) if values.secrets else NO_MASK


async def masker_for(db: Database, keys: SecretKeys, run: Run) -> Masker:
    """For a run found again (after a restart or a takeover): the secrets it names, as they
    are now; as much as can be had (a deleted secret, a lost key are left out), never an
    error. Variables play no part in masking: only the secrets are read."""
    try:
        spec = JobSpec.from_dict(run.spec)
        refs = references(spec)
        if not refs.secrets:
            return NO_MASK
        _, sealed = await db.read(variable_store.resolve, spec.namespace,
                                  Refs(secrets=refs.secrets))
    except Exception:
        return NO_MASK
    opened = await asyncio.to_thread(_readable, keys, sealed)
    return Masker(forms(opened)) if opened else NO_MASK


def _readable(keys: SecretKeys, sealed: dict[str, tuple[str, str]]) -> list[str]:
    opened: list[str] = []
    for name, (namespace, data) in sealed.items():
        try:
            opened.append(keys.decrypt(namespace, name, data))
        except Exception:
            continue
    return opened
