"""A run's outputs are masked before they are kept: in the file's bytes, in JSON escapes, in
keys and in the reason a file was refused."""

from __future__ import annotations

import json
from pathlib import Path

from herder.engine import outputs
from herder.masking import Masker, forms

VALUE = 's3cret"value'


def _read(tmp_path: Path, content: bytes) -> outputs.Outputs:
    folder = outputs.work_dir(tmp_path, 1)
    folder.mkdir(parents=True)
    (folder / outputs.FILE_NAME).write_bytes(content)
    return outputs.read(tmp_path, 1, Masker(forms([VALUE])))


def test_lines_and_json_are_masked(tmp_path: Path) -> None:
    assert _read(tmp_path, f"pw={VALUE}\nok=1\n".encode()).values == {"pw": "***", "ok": "1"}


def test_json_escapes_are_masked(tmp_path: Path) -> None:
    spelled = "".join(f"\\u{ord(c):04x}" for c in VALUE)  # every character escaped
    content = json.dumps({"a": VALUE, "b": [VALUE, {"c": VALUE}]}).encode()
    found = _read(tmp_path, content[:-1] + f', "d": "{spelled}"}}'.encode())
    assert found.values == {"a": "***", "b": ["***", {"c": "***"}], "d": "***"}


def test_the_reason_a_file_was_refused_is_masked(tmp_path: Path) -> None:
    found = _read(tmp_path, f"{VALUE}-no-equals-sign\n".encode())
    assert found.values == {} and found.error is not None and VALUE not in found.error
