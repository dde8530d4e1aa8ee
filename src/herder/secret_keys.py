"""The keys that encrypt secrets at rest, and the encryption itself (AES-256-GCM).

A secret's value is stored as ``v1.<key id>.<base64url(nonce | ciphertext)>``. The secret's
namespace and name are the associated data: a ciphertext copied onto another secret (another
row, another namespace) does not decrypt. The key id (a hash of the key, not the key) tells
which key a value was encrypted with, so that a server with another key says so plainly.

Where the key comes from, first found wins:

1. ``HERDER_SECRET_KEY``: a key (32 random bytes, URL-safe base64, as ``herder secret
   new-key`` prints);
2. ``HERDER_SECRET_KEY_FILE``: a file holding the key on its first line;
3. on the embedded default, ``<data dir>/secret.key``, created (mode 0600) the first time a
   secret is stored or read.

Older keys, still accepted for reading (key rotation), come from ``HERDER_SECRET_OLD_KEYS``
(comma-separated) and from the further lines of the key file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets as random
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from herder.model.errors import HerderError

VERSION = "v1"
KEY_FILE = "secret.key"
_NONCE = 12


class SecretKeyError(HerderError):
    """A secret cannot be encrypted or decrypted with the keys this server has."""

    code = "secret_key"


def new_key() -> str:
    """A fresh key, as ``HERDER_SECRET_KEY`` takes it."""
    return base64.urlsafe_b64encode(random.token_bytes(32)).decode()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"herder-secret-key\0" + key).hexdigest()[:12]


def _decode_key(text: str, where: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode())
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != 32:
        raise SecretKeyError(
            f"{where}: not a key; a key is 32 random bytes in URL-safe base64 (44 characters), "
            "such as `herder secret new-key` prints"
        )
    return key


def _associated(namespace: str, name: str) -> bytes:
    return f"herder-secret\0{namespace}\0{name}".encode()


class SecretKeys:
    """One current key (encrypts and decrypts) and older ones (decrypt only), read when first
    needed."""

    def __init__(
        self,
        *,
        key: str | None = None,
        key_file: Path | None = None,
        old_keys: str | None = None,
        data_dir: Path | None = None,
    ) -> None:
        self._key_text = key
        self._key_file = key_file
        self._old_text = old_keys
        self._data_dir = data_dir
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] | None = None
        self._current = ""

    @property
    def current_id(self) -> str:
        self._load()
        return self._current

    def derive(self, purpose: str) -> bytes:
        """A key for another use (``"session"``: signing the UI's session cookies), derived
        from the current key: every server with the same secret key derives the same one, and
        changing the key ends what was signed with the old one."""
        keys = self._load()
        return hmac.new(keys[self._current], b"herder-derive\0" + purpose.encode(),
                        hashlib.sha256).digest()

    def encrypt(self, namespace: str, name: str, value: str) -> str:
        keys = self._load()
        nonce = os.urandom(_NONCE)
        sealed = AESGCM(keys[self._current]).encrypt(
            nonce, value.encode(), _associated(namespace, name)
        )
        return f"{VERSION}.{self._current}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def decrypt(self, namespace: str, name: str, stored: str) -> str:
        """The value; ``SecretKeyError`` saying why when it cannot be had."""
        keys = self._load()
        where = f"secret {name!r} in namespace {namespace!r}"
        version, _, rest = stored.partition(".")
        used, _, data = rest.partition(".")
        if version != VERSION or not data:
            raise SecretKeyError(f"{where} is stored in a form this server does not know")
        key = keys.get(used)
        if key is None:
            raise SecretKeyError(
                f"{where} was encrypted with key {used}, which this server does not have (its "
                f"key is {self._current}); every server must have the same HERDER_SECRET_KEY "
                "(or HERDER_SECRET_KEY_FILE), and old keys stay readable in "
                "HERDER_SECRET_OLD_KEYS; or set the secret again"
            )
        try:
            raw = base64.urlsafe_b64decode(data.encode())
            plain = AESGCM(key).decrypt(raw[:_NONCE], raw[_NONCE:], _associated(namespace, name))
        except (InvalidTag, binascii.Error, ValueError):
            raise SecretKeyError(
                f"{where} does not decrypt: its stored value was altered or belongs to another "
                "secret; set it again"
            ) from None
        return plain.decode()

    def _load(self) -> dict[str, bytes]:
        with self._lock:
            if self._keys is None:
                current, old = self._read()
                self._current = key_id(current)
                self._keys = {key_id(k): k for k in old} | {self._current: current}
            return self._keys

    def _read(self) -> tuple[bytes, list[bytes]]:
        old = [_decode_key(t, "HERDER_SECRET_OLD_KEYS") for t in _split(self._old_text)]
        if self._key_text:
            return _decode_key(self._key_text, "HERDER_SECRET_KEY"), old
        if self._key_file is not None:
            current, more = _read_file(self._key_file, create=False)
            return current, old + more
        if self._data_dir is None:
            raise SecretKeyError("no key for secrets: set HERDER_SECRET_KEY")
        current, more = _read_file(self._data_dir / KEY_FILE, create=True)
        return current, old + more


def _split(text: str | None) -> Iterable[str]:
    return [t for t in (text or "").split(",") if t.strip()]


def _read_file(path: Path, *, create: bool) -> tuple[bytes, list[bytes]]:
    if create and not path.exists():
        # Written aside, then linked into place: link fails if another process got there
        # first, and nobody ever reads a half-written key.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(new_key() + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(temporary)
    try:
        lines = [line for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise SecretKeyError(f"cannot read the secret key file {path}: {exc.strerror}") from None
    if not lines:
        raise SecretKeyError(f"the secret key file {path} is empty")
    keys = [_decode_key(line, str(path)) for line in lines]
    return keys[0], keys[1:]
