"""Encrypting secrets at rest: AES-GCM bound to the secret's name, keys from the environment or
a key file, old keys for reading, and plain errors when a key is missing or wrong."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from herder.secret_keys import KEY_FILE, SecretKeyError, SecretKeys, new_key


def test_a_value_round_trips_and_is_not_in_its_ciphertext(tmp_path: Path) -> None:
    keys = SecretKeys(key=new_key())
    sealed = keys.encrypt("ops", "pw", "s3cret-value")
    assert "s3cret" not in sealed and sealed.startswith(f"v1.{keys.current_id}.")
    assert keys.decrypt("ops", "pw", sealed) == "s3cret-value"
    assert keys.encrypt("ops", "pw", "s3cret-value") != sealed  # a fresh nonce each time


def test_a_ciphertext_moved_to_another_secret_does_not_decrypt() -> None:
    keys = SecretKeys(key=new_key())
    sealed = keys.encrypt("ops", "pw", "s3cret-value")
    for namespace, name in (("ops", "other"), ("dev", "pw"), ("*", "pw")):
        with pytest.raises(SecretKeyError, match="altered or belongs to another secret"):
            keys.decrypt(namespace, name, sealed)


def test_the_default_key_file_is_made_once_0600(tmp_path: Path) -> None:
    first = SecretKeys(data_dir=tmp_path)
    sealed = first.encrypt("default", "pw", "s3cret-value")
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SecretKeys(data_dir=tmp_path).decrypt("default", "pw", sealed) == "s3cret-value"
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]


def test_another_server_key_is_named_in_the_error(tmp_path: Path) -> None:
    sealed = SecretKeys(key=new_key()).encrypt("default", "pw", "s3cret-value")
    other = SecretKeys(key=new_key())
    with pytest.raises(SecretKeyError, match="every server must have the same HERDER_SECRET_KEY"):
        other.decrypt("default", "pw", sealed)


def test_old_keys_still_read(tmp_path: Path) -> None:
    old, current = new_key(), new_key()
    sealed = SecretKeys(key=old).encrypt("default", "pw", "s3cret-value")
    assert SecretKeys(key=current, old_keys=old).decrypt("default", "pw", sealed) == (
        "s3cret-value")
    key_file = tmp_path / "keys"
    key_file.write_text(f"{current}\n{old}\n")
    rotated = SecretKeys(key_file=key_file)
    assert rotated.decrypt("default", "pw", sealed) == "s3cret-value"
    assert rotated.encrypt("default", "pw", "x1x2x3").split(".")[1] == rotated.current_id


def test_bad_keys_are_refused_plainly(tmp_path: Path) -> None:
    with pytest.raises(SecretKeyError, match="HERDER_SECRET_KEY: not a key"):
        SecretKeys(key="short").encrypt("default", "pw", "value1")
    with pytest.raises(SecretKeyError, match="cannot read the secret key file"):
        SecretKeys(key_file=tmp_path / "missing").encrypt("default", "pw", "value1")
    with pytest.raises(SecretKeyError, match="stored in a form"):
        SecretKeys(key=new_key()).decrypt("default", "pw", "plain text")
