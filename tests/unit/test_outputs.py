"""Parsing a run's output file: both forms, the limits, and whatever a hostile run may write."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from herder.engine import outputs as output_file
from herder.model.errors import InvalidSpec
from herder.model.outputs import MAX_BYTES, MAX_DEPTH, MAX_KEYS, Outputs, load, parse


def refused(data: bytes) -> str:
    with pytest.raises(InvalidSpec) as caught:
        parse(data)
    message = caught.value.message
    assert message.startswith("outputs: ")
    assert load(data) == Outputs(values={}, error=message)
    return message


# key=value lines ---------------------------------------------------------------------------


def test_lines() -> None:
    data = b"rows=42\npath=/tmp/x\n"
    assert parse(data) == {"rows": "42", "path": "/tmp/x"}
    assert load(data) == Outputs(values={"rows": "42", "path": "/tmp/x"})


def test_lines_later_win_and_blanks_and_comments_are_ignored() -> None:
    data = b"# written by the export\n\nrows=1\n   \n  # indented comment\nrows=2\r\nlast=x"
    assert parse(data) == {"rows": "2", "last": "x"}


def test_the_value_is_the_rest_of_the_line_as_is() -> None:
    assert parse(b"query=a=b&c=d\nempty=\nspaced=  two words  \n") == {
        "query": "a=b&c=d", "empty": "", "spaced": "  two words  "}


def test_utf8_values_and_a_byte_order_mark() -> None:
    assert parse("\ufeffcity=Zürich\n".encode()) == {"city": "Zürich"}


@pytest.mark.parametrize("data", [b"", b"\n\n", b"# nothing\n", b"   "])
def test_nothing_published(data: bytes) -> None:
    assert parse(data) == {}
    assert load(data) == Outputs()


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("no equals sign", "expected key=value"),
        ("1rows=3", "not a valid output name"),
        ("_rows=3", "not a valid output name"),
        ("my-key=3", "not a valid output name"),
        (" rows=3", "not a valid output name"),
        ("=3", "not a valid output name"),
        ("k" * 65 + "=3", "at most 64"),
        ("ключ=3", "not a valid output name"),
    ],
)
def test_bad_lines(line: str, words: str) -> None:
    message = refused(f"ok=1\n{line}\n".encode())
    assert "line 2" in message and words in message


def test_longest_key() -> None:
    assert parse(b"k" * 64 + b"=v") == {"k" * 64: "v"}


# JSON --------------------------------------------------------------------------------------


def test_json_object() -> None:
    data = {"rows": 42, "ratio": 0.5, "ok": True, "none": None, "files": ["a", "b"],
            "meta": {"by": "etl", "tags": [{"x": 1}]}}
    assert parse(json.dumps(data, indent=2).encode()) == data


def test_json_later_keys_win() -> None:
    assert parse(b'  {"a": 1, "a": 2}') == {"a": 2}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[1, 2]", "must be an object"),
        ('{"rows": 1', "not valid JSON"),
        ("{'rows': 1}", "not valid JSON"),
        ('{"bad key": 1}', "not a valid output name"),
        ('{"x": NaN}', "NaN is not a JSON value"),
        ('{"x": -Infinity}', "not a JSON value"),
        ('{"x": 1e999}', "out of range"),
        ('{"x": -1e400}', "out of range"),
        ('{"x": 1e300}', "out of range"),
        ('{"x": 9223372036854775808}', "out of range"),
        ('{"x": ' + "9" * 5000 + "}", "out of range"),
        ('{"x": "a\\u0000b"}', "NUL character"),
        ('{"x": {"a\\u0000": 1}}', "NUL character"),
        ('{"x": ["\\ud800"]}', "unpaired surrogate"),
    ],
)
def test_bad_json(text: str, words: str) -> None:
    assert words in refused(text.encode())


def test_largest_integers_pass() -> None:
    assert parse(b'{"big": 9223372036854775807, "small": -9223372036854775807, "f": 1e18, '
                 b'"tiny": 1e-300}') == {
        "big": 2**63 - 1, "small": -(2**63 - 1), "f": 1e18, "tiny": 1e-300}


def test_nesting_up_to_the_limit() -> None:
    inner = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert parse(f'{{"deep": {inner}}}'.encode())
    too_deep = "[" * MAX_DEPTH + "]" * MAX_DEPTH
    assert "nested deeper" in refused(f'{{"deep": {too_deep}}}'.encode())


def test_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"s": "[[[[[[[[[[{{{{{{{{{{ \" ]]]"})
    assert parse(text.encode()) == {"s": "[[[[[[[[[[{{{{{{{{{{ \" ]]]"}


def test_nesting_that_would_exhaust_the_parser() -> None:
    # 32,000 levels in 64 KiB: refused before the parser could recurse.
    half = MAX_BYTES // 2 - 8
    assert "nested deeper" in refused(b'{"a":' + b"[" * half + b"]" * half + b"}")


# Limits and hostile bytes ------------------------------------------------------------------


def test_size_limit() -> None:
    line = b"k=" + b"v" * 98 + b"\n"  # 101 bytes
    fits = line * (MAX_BYTES // len(line))
    assert parse(fits) == {"k": "v" * 98}
    big = b"k=" + b"v" * (MAX_BYTES - 1)
    assert len(big) == MAX_BYTES + 1
    assert "larger than 64 KiB" in refused(big)


def test_key_limit() -> None:
    lines = b"".join(b"k%d=v\n" % i for i in range(MAX_KEYS))
    assert len(parse(lines)) == MAX_KEYS
    assert "more than 256 keys" in refused(lines + b"one_more=v\n")
    # The same key again is not a new key.
    assert len(parse(lines + b"k0=w\n")) == MAX_KEYS
    obj = {f"k{i}": i for i in range(MAX_KEYS + 1)}
    assert "more than 256 keys" in refused(json.dumps(obj).encode())


def test_nul_bytes() -> None:
    assert "NUL byte (at byte 6)" in refused(b"rows=4\x002\n")


@pytest.mark.parametrize("data", [b"rows=\xff\n", b"rows=\xc3\n", b"x=\xed\xa0\x80", b"\x80"])
def test_invalid_utf8(data: bytes) -> None:
    assert "not valid UTF-8" in refused(data)


def test_binary_garbage_never_raises() -> None:
    for seed in range(200):
        data = random.Random(seed).randbytes(seed * 7)
        assert isinstance(load(data), Outputs)
        assert isinstance(load(b"{" + data), Outputs)


def test_error_messages_stay_short() -> None:
    message = refused(b"x" * 10_000 + b"\n")
    assert len(message) < 200


# Reading the file --------------------------------------------------------------------------


def _run_dir(tmp_path: Path, run_id: int = 7) -> Path:
    folder = output_file.work_dir(tmp_path, run_id)
    folder.mkdir(parents=True)
    return folder


def test_read_a_file(tmp_path: Path) -> None:
    (_run_dir(tmp_path) / ".herder-outputs").write_bytes(b"rows=42\n")
    assert output_file.path(tmp_path, 7) == tmp_path / "work" / "7" / ".herder-outputs"
    assert output_file.read(tmp_path, 7) == Outputs(values={"rows": "42"})


def test_no_file_and_no_folder_mean_no_outputs(tmp_path: Path) -> None:
    assert output_file.read(tmp_path, 7) == Outputs()
    _run_dir(tmp_path)
    assert output_file.read(tmp_path, 7) == Outputs()


def test_a_symlink_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("password=hunter2\n")
    (_run_dir(tmp_path) / ".herder-outputs").symlink_to(secret)
    read = output_file.read(tmp_path, 7)
    assert read.values == {} and read.error and "symbolic link" in read.error


def test_a_symlinked_working_folder_is_not_followed(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / ".herder-outputs").write_text("password=hunter2\n")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "7").symlink_to(elsewhere)
    read = output_file.read(tmp_path, 7)
    assert read.values == {} and read.error and "symbolic link" in read.error


def test_a_fifo_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(_run_dir(tmp_path) / ".herder-outputs")
    read = output_file.read(tmp_path, 7)
    assert read.values == {} and read.error and "not a regular file" in read.error


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (_run_dir(tmp_path) / ".herder-outputs").mkdir()
    read = output_file.read(tmp_path, 7)
    assert read.values == {} and read.error and "not a regular file" in read.error


def test_a_huge_file_is_not_read_whole(tmp_path: Path) -> None:
    with (_run_dir(tmp_path) / ".herder-outputs").open("wb") as f:
        f.truncate(10 * 1024**3)  # sparse: 10 GiB of NULs that take no disk
    read = output_file.read(tmp_path, 7)
    assert read.values == {} and read.error and "larger than 64 KiB" in read.error
