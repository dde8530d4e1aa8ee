"""Manifests: reading ``apiVersion/kind/metadata/spec`` documents from files, safely.

Files come from people and from repositories nobody reviewed closely, so reading is defensive:
at most ``MAX_FILE_BYTES`` per file, ``yaml.SafeLoader`` only, a budget on how far YAML aliases
may expand a document, no symlinks followed out of a folder, duplicate keys refused. Every
problem in a set of files is collected with where it is (``file: document N (line L)``) before
anything is sent, so that a bad document means nothing is applied.

``read_manifests`` answers one ``Manifest`` per object; ``read_object_file`` and
``from_manifest`` serve ``herder job create -f`` and ``herder workflow create -f``.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from herder.cli.client import CliError

API_VERSION = "herder/v1"
KINDS = ("Namespace", "Job", "Workflow")
# Kinds the design promises; this version of herder does not serve them yet.
LATER_KINDS = ("Token", "Variable", "Secret", "Trigger", "Node")
MAX_FILE_BYTES = 1024 * 1024
MAX_VALUES = 250_000  # per file, after YAML aliases are expanded
MAX_DEPTH = 64
MAX_FILES = 1000
MAX_SHOWN = 20
SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
METADATA_KEYS = ("name", "namespace", "labels", "annotations")
_TOP_KEYS = ("apiVersion", "kind", "metadata", "spec")


class ManifestError(CliError):
    """Manifests that cannot be used; ``problems`` says what is wrong and where, each."""

    def __init__(self, problems: list[str]) -> None:
        shown = problems[:MAX_SHOWN]
        if len(problems) > MAX_SHOWN:
            shown.append(f"… and {len(problems) - MAX_SHOWN} more")
        head = "a problem" if len(problems) == 1 else f"{len(problems)} problems"
        super().__init__(f"{head} in the manifests:\n  " + "\n  ".join(shown), exit_code=2)
        self.problems = problems


class _Bad(Exception):
    """One problem in one file or document; the message is shown as it is."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where a document is: the file as the user named it, its 1-based index and first line."""

    file: str
    document: int
    line: int

    def __str__(self) -> str:
        return f"{self.file}: document {self.document} (line {self.line})"


@dataclass(frozen=True, slots=True, kw_only=True)
class Manifest:
    """One object to apply: its JSON form for the API (``body``) and the normalized form the
    server would store (``spec``, compared with what it has)."""

    kind: str
    namespace: str
    name: str
    body: dict[str, Any]
    spec: dict[str, Any]
    source: Source

    @property
    def ref(self) -> str:
        return self.name if self.kind == "Namespace" else f"{self.namespace}/{self.name}"


# -- files ------------------------------------------------------------------------------------


def read_manifests(paths: list[str]) -> list[Manifest]:
    """Every object in the files and folders named (``-`` is stdin), in order; or a
    ``ManifestError`` listing every problem found in all of them."""
    problems: list[str] = []
    found: list[Manifest] = []
    seen: dict[tuple[str, str, str], Source] = {}
    for label, text in _texts(paths, problems):
        try:
            documents = list(load_documents(text))
        except _Bad as exc:
            problems.append(f"{label}: {exc}")
            continue
        for index, line, data in documents:
            if data is None:  # an empty document, e.g. after a trailing '---'
                continue
            source = Source(file=label, document=index, line=line)
            try:
                manifest = parse(data, source)
            except _Bad as exc:
                problems.append(f"{source}: {exc}")
                continue
            key = (manifest.kind, manifest.namespace, manifest.name)
            if key in seen:
                problems.append(
                    f"{source}: {manifest.kind.lower()} {manifest.ref} is also defined at "
                    f"{seen[key]}"
                )
                continue
            seen[key] = source
            found.append(manifest)
    if not found and not problems:
        problems.append(f"no manifests found in {', '.join(paths)} (files ending in "
                        f"{', '.join(SUFFIXES)})")
    if problems:
        raise ManifestError(problems)
    found.sort(key=lambda m: m.kind != "Namespace")  # namespaces before the objects in them
    return found


def _texts(paths: list[str], problems: list[str]) -> Iterator[tuple[str, str]]:
    """``(label, text)`` of every manifest file named or found in a named folder."""
    count = 0
    for given in paths:
        if given == STDIN:
            files: list[tuple[str, Path | None, bool]] = [("<stdin>", None, False)]
        elif Path(given).is_dir():
            files = [(str(p), p, True) for p in _walk(Path(given), problems)]
        else:
            files = [(given, Path(given), False)]
        for label, path, inside_folder in files:
            count += 1
            if count > MAX_FILES:
                problems.append(f"{label}: more than {MAX_FILES} manifest files; name fewer")
                return
            try:
                yield label, _read(path, nofollow=inside_folder)
            except _Bad as exc:
                problems.append(f"{label}: {exc}")


def _walk(top: Path, problems: list[str], root: Path | None = None) -> Iterator[Path]:
    """Manifest files under ``top`` in name order, skipping hidden names. Symlinks are never
    followed: one to a place inside the folder is skipped (its target is read there), one
    pointing out of it is a problem."""
    root = root or Path(os.path.realpath(top))
    try:
        entries = sorted(os.scandir(top), key=lambda e: e.name)
    except OSError as exc:
        problems.append(f"{top}: cannot read the folder: {exc.strerror or exc}")
        return
    for entry in entries:
        path = top / entry.name
        if entry.name.startswith("."):
            continue
        if entry.is_symlink():
            target = Path(os.path.realpath(path))
            if not target.is_relative_to(root):
                problems.append(
                    f"{path}: a symlink to {target}, outside {root}; not followed (name the "
                    "target with its own -f if you mean it)"
                )
        elif entry.is_dir(follow_symlinks=False):
            yield from _walk(path, problems, root)
        elif path.suffix.lower() in SUFFIXES:
            if entry.is_file(follow_symlinks=False):
                yield path
            else:
                problems.append(f"{path}: not a regular file")


def _read(path: Path | None, *, nofollow: bool) -> str:
    """At most ``MAX_FILE_BYTES`` of UTF-8 text from ``path`` (``None``: stdin)."""
    if path is None:
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read(MAX_FILE_BYTES + 1) if stream is not None else (
            sys.stdin.read(MAX_FILE_BYTES + 1).encode("utf-8", "surrogateescape")
        )
    else:
        flags = os.O_RDONLY | (os.O_NOFOLLOW if nofollow else 0)
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            raise _Bad(f"cannot read it: {exc.strerror or exc}") from None
        with os.fdopen(fd, "rb") as file:
            if stat.S_ISDIR(os.fstat(fd).st_mode):
                raise _Bad("is a folder")
            data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise _Bad(f"larger than {MAX_FILE_BYTES // 1024} KiB; split it into several files")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Bad("not UTF-8 text") from None


# -- documents --------------------------------------------------------------------------------


_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"


class _Loader(yaml.SafeLoader):
    """``SafeLoader`` that refuses a key given twice in one mapping (the last would win), and
    reads a plain key that YAML 1.1 would make a boolean (``on``, ``yes``…) as the text it is:
    a workflow's ``needs: [{step: x, on: failure}]`` means the key ``on``."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if (isinstance(key_node, yaml.ScalarNode) and key_node.tag == _BOOL_TAG
                    and key_node.style is None):
                key_node.tag = _STR_TAG
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = (key_node.tag, key_node.value)
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"the key {key_node.value[:60]!r} is given twice",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_documents(text: str) -> Iterator[tuple[int, int, Any]]:
    """``(index, line, data)`` for each document (1-based), as plain JSON values."""
    budget = [MAX_VALUES]
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            pass  # perhaps a YAML flow mapping: read it as YAML below
        except RecursionError:
            raise _Bad(f"nested deeper than {MAX_DEPTH} levels") from None
        else:
            yield 1, text[: len(text) - len(stripped)].count("\n") + 1, _plain(data, budget, ())
            return
    loader = _Loader(text)
    index = 0
    try:
        while loader.check_node():
            node = loader.get_node()
            index += 1
            line = node.start_mark.line + 1 if node is not None else 1
            data = loader.construct_document(node) if node is not None else None
            yield index, line, _plain(data, budget, ())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "invalid"
        raise _Bad(f"not valid YAML: {where}{what}") from None
    except yaml.YAMLError as exc:
        raise _Bad(f"not valid YAML: {str(exc)[:200]}") from None
    except RecursionError:
        raise _Bad(f"nested deeper than {MAX_DEPTH} levels") from None
    finally:
        loader.dispose()


def _plain(value: Any, budget: list[int], loc: tuple[str, ...]) -> Any:
    """A copy of ``value`` as JSON values, aliases expanded within ``budget`` values."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _Bad(
            f"expands to more than {MAX_VALUES} values (YAML aliases multiplying it?); refused"
        )
    if len(loc) > MAX_DEPTH:
        raise _Bad(f"nested deeper than {MAX_DEPTH} levels (a recursive YAML alias?)")
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _Bad(
                    f"{_loc(loc)}the key {key!r} is not a string; quote it"
                )
            result[key] = _plain(item, budget, (*loc, key))
        return result
    if isinstance(value, list):
        return [_plain(item, budget, (*loc, str(i))) for i, item in enumerate(value)]
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise _Bad(f"{_loc(loc)}a {type(value).__name__} value has no JSON form; write it as text")


def _loc(loc: tuple[str, ...]) -> str:
    return f"{'.'.join(loc)}: " if loc else ""


def parse(data: Any, source: Source) -> Manifest:
    """Check one document's layout and its object; ``_Bad`` names the field at fault."""
    if not isinstance(data, dict):
        raise _Bad(f"expected a manifest (a mapping), got {_type(data)}")
    unknown = [k for k in data if k not in _TOP_KEYS]
    if unknown:
        raise _Bad(f"unknown field {unknown[0][:60]!r}; a manifest has apiVersion, kind, "
                   "metadata and spec")
    version = data.get("apiVersion")
    if version is None:
        raise _Bad(f"apiVersion: missing; give apiVersion: {API_VERSION}")
    if version != API_VERSION:
        raise _Bad(f"apiVersion: {str(version)[:60]!r} is not supported; give {API_VERSION}")
    kind = data.get("kind")
    if kind is None:
        raise _Bad(f"kind: missing; give one of {', '.join(KINDS)}")
    if kind not in KINDS:
        known = "not supported by this herder yet" if kind in LATER_KINDS else "unknown"
        raise _Bad(f"kind: {str(kind)[:60]!r} is {known}; supported: {', '.join(KINDS)}")
    metadata, spec = data.get("metadata"), data.get("spec")
    if not isinstance(metadata, dict):
        raise _Bad("metadata: missing" if metadata is None else "metadata: must be a mapping")
    unknown = [k for k in metadata if k not in METADATA_KEYS]
    if unknown:
        raise _Bad(f"metadata.{unknown[0][:60]}: unknown; metadata has "
                   f"{', '.join(METADATA_KEYS)}")
    if "name" not in metadata:
        raise _Bad("metadata.name: missing")
    if kind == "Namespace":
        return _namespace(metadata, spec, source)
    if not isinstance(spec, dict):
        raise _Bad("spec: missing" if spec is None else "spec: must be a mapping")
    misplaced = [k for k in METADATA_KEYS if k in spec]
    if misplaced:
        raise _Bad(f"spec.{misplaced[0]}: belongs in metadata")
    body = {**spec, **metadata}
    normalized = normalize(kind, body)
    return Manifest(
        kind=kind, namespace=normalized["namespace"], name=normalized["name"], body=body,
        spec=normalized, source=source,
    )


def _namespace(metadata: dict[str, Any], spec: Any, source: Source) -> Manifest:
    """A ``kind: Namespace`` document: a name, and optionally the ``retention`` of the
    namespace's jobs that set none."""
    from herder.model.errors import InvalidSpec
    from herder.model.jobs import check_name
    from herder.model.policies import parse_retention

    extra = [k for k in metadata if k != "name"]
    if extra:
        raise _Bad(f"metadata.{extra[0]}: a Namespace has only a name")
    if spec is not None and not isinstance(spec, dict):
        raise _Bad("spec: must be a mapping (a Namespace's spec holds only retention)")
    unknown = [k for k in spec or {} if k != "retention"]
    if unknown:
        raise _Bad(f"spec.{unknown[0]}: a Namespace's spec holds only retention")
    name = metadata["name"]
    if not isinstance(name, str):
        raise _Bad("metadata.name: must be a string")
    fields: dict[str, Any] = {"name": name}
    try:
        check_name(name, what="metadata.name")
        if spec and "retention" in spec:  # written the one way the server answers it
            fields["retention"] = parse_retention(spec["retention"]).to_dict() or None
    except InvalidSpec as exc:
        where = "" if exc.message.startswith("metadata.") else "spec."
        raise _Bad(where + exc.message) from None
    return Manifest(kind="Namespace", namespace=name, name=name, body=dict(fields),
                    spec=fields, source=source)


def normalize_job(body: Mapping[str, Any]) -> dict[str, Any]:
    """The job as the server stores and answers it (see ``normalize``)."""
    return normalize("Job", body)


def normalize(kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """The object as the server stores and answers it: the same checks and canonical forms
    (durations, schedules, policies) as ``PUT /api/v1/{kind}s``, done here before sending.
    What only the server can check (that the jobs a workflow runs exist) waits for it."""
    from pydantic import ValidationError

    from herder.model.errors import InvalidSpec

    try:
        checked: dict[str, Any] = _schema(kind).model_validate(dict(body)).to_spec().to_dict()
    except ValidationError as exc:
        raise _Bad("; ".join(_problem(e, kind) for e in exc.errors()[:5])) from None
    except InvalidSpec as exc:
        raise _Bad(_placed(exc.message)) from None
    return checked


def _schema(kind: str) -> Any:
    if kind == "Workflow":
        from herder.api.workflow_schemas import WorkflowIn

        return WorkflowIn
    from herder.api.schemas import JobIn

    return JobIn


def _placed(message: str) -> str:
    """A model's message, its path put under ``metadata.`` or ``spec.`` as the file has it."""
    field = message.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
    if " " in field or field == message:
        return message
    return ("metadata." if field in METADATA_KEYS else "spec.") + message


def _problem(error: Mapping[str, Any], kind: str = "Job") -> str:
    loc = [str(p) for p in error.get("loc", ())]
    message = str(error.get("msg", "")).removeprefix("Value error, ")
    if not loc:
        return message
    where = ("metadata." if loc[0] in METADATA_KEYS else "spec.") + ".".join(loc)
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown field; a {kind} spec has {', '.join(spec_fields(kind))}"
    if error.get("type") == "missing":
        return f"{where}: missing"
    if message.startswith((f"{loc[0]}:", f"{loc[0]}.")):  # the model named the field already
        return ("metadata." if loc[0] in METADATA_KEYS else "spec.") + message
    return f"{where}: {message}"


@cache
def spec_fields(kind: str = "Job") -> tuple[str, ...]:
    return tuple(k for k in _schema(kind).model_fields if k not in METADATA_KEYS)


def _type(value: Any) -> str:
    return {list: "a list", str: "text", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


# -- `herder job create -f` -------------------------------------------------------------------


def read_job_file(path: Path) -> dict[str, Any]:
    """A job's JSON form from one document (see ``read_object_file``)."""
    return read_object_file(path, "Job")


def read_object_file(path: Path, kind: str) -> dict[str, Any]:
    """A job's or workflow's JSON form from one JSON or YAML document; a manifest of that
    ``kind`` is flattened to it. Read with the same limits as ``herder apply``."""
    label = "<stdin>" if str(path) == STDIN else str(path)
    try:
        text = _read(None if str(path) == STDIN else path, nofollow=False)
        documents = [d for d in load_documents(text) if d[2] is not None]
    except _Bad as exc:
        raise CliError(f"{label}: {exc}", exit_code=2) from None
    if len(documents) != 1:
        raise CliError(
            f"{label}: holds {len(documents)} documents; `herder {kind.lower()} create -f` "
            "takes one "
            "(`herder apply -f` takes many)",
            exit_code=2,
        )
    data = documents[0][2]
    if not isinstance(data, dict):
        raise CliError(f"{label}: expected a {kind.lower()} (a mapping), got {_type(data)}",
                       exit_code=2)
    if "spec" in data or "kind" in data:
        return from_manifest(data, where=label, kind=kind)
    return data


def from_manifest(data: dict[str, Any], *, where: str, kind: str = "Job") -> dict[str, Any]:
    """``{apiVersion, kind, metadata, spec}`` → spec merged with name, namespace, labels…"""
    given = data.get("kind", kind)
    if given != kind:
        raise CliError(f"{where}: kind {str(given)[:40]!r} is not a {kind}; use "
                       "`herder apply -f`", exit_code=2)
    metadata = data.get("metadata") or {}
    spec = data.get("spec") or {}
    if not isinstance(metadata, dict) or not isinstance(spec, dict):
        raise CliError(f"{where}: metadata and spec must be mappings", exit_code=2)
    body = dict(spec)
    body.update({k: metadata[k] for k in METADATA_KEYS if k in metadata})
    return body
