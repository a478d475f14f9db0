"""Shop keys: owner-only files, envelope encryption (wrapped data keys), retirement of old keys."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from fedprice.errors import BadSignatureError, ConfigError
from privacy.crypto import DecryptionError
from privacy.keys import ShopKeyring, write_secret


def _mode(p: Path) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_key_files_are_owner_only_and_the_directory_is_private(tmp_path: Path) -> None:
    key_dir = tmp_path / "shop" / "keys"
    ShopKeyring.load("S1", key_dir)
    assert _mode(key_dir) == 0o700
    files = sorted(p.name for p in key_dir.iterdir())
    assert files == ["datakeys.json", "master.key", "pseudonym.key"]
    assert all(_mode(key_dir / f) == 0o600 for f in files)


def test_a_key_file_readable_by_others_or_an_open_directory_is_refused(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ShopKeyring.load("S1", key_dir)
    os.chmod(key_dir / "pseudonym.key", 0o644)
    with pytest.raises(ConfigError, match="readable by others; run: chmod 600"):
        ShopKeyring.load("S1", key_dir)
    os.chmod(key_dir / "pseudonym.key", 0o600)
    os.chmod(key_dir, 0o755)
    with pytest.raises(ConfigError, match="accessible by others; run: chmod 700"):
        ShopKeyring.load("S1", key_dir)


def test_secrets_are_never_overwritten_and_missing_ones_are_named(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ShopKeyring.load("S1", key_dir)
    with pytest.raises(ConfigError, match="refusing to overwrite"):
        write_secret(key_dir / "master.key", os.urandom(32))
    (key_dir / "pseudonym.key").unlink()
    with pytest.raises(ConfigError, match="pseudonym.key is missing"):
        ShopKeyring.load("S1", key_dir, create=False)


def test_envelope_data_keys_are_stored_only_wrapped_by_the_master_key(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ring = ShopKeyring.load("S1", key_dir)
    doc = json.loads((key_dir / "datakeys.json").read_text())
    wrapped = base64.b64decode(doc["keys"]["1"])
    dek = ring.data_keys[1]
    assert len(dek) == 32 and len(wrapped) == 40  # RFC 3394 key wrap
    stored = (key_dir / "datakeys.json").read_bytes()
    assert dek not in stored and base64.b64encode(dek) not in stored
    assert aes_key_unwrap((key_dir / "master.key").read_bytes(), wrapped) == dek
    assert ring.pseudonym_key != dek and ring.master != dek


def test_a_replaced_master_key_cannot_unwrap_the_data_keys(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ShopKeyring.load("S1", key_dir)
    (key_dir / "master.key").unlink()
    write_secret(key_dir / "master.key", os.urandom(32))
    with pytest.raises(BadSignatureError, match="do not unwrap with master.key"):
        ShopKeyring.load("S1", key_dir)


def test_retiring_keys_removes_them_from_disk_and_what_they_sealed_becomes_unreadable(tmp_path: Path) -> None:
    key_dir = tmp_path / "keys"
    ring = ShopKeyring.load("S1", key_dir)
    ctx: dict[str, str | int] = {"table": "t", "schema": 1}
    old_blob = ring.seal(b"old", ctx)
    old_wrapped = json.loads((key_dir / "datakeys.json").read_text())["keys"]["1"]
    new = ring.add_data_key()
    reloaded = ShopKeyring.load("S1", key_dir)
    assert sorted(reloaded.data_keys) == [1, 2] and reloaded.active_version == 2
    assert reloaded.unseal(old_blob, ctx) == b"old"  # both keys held until retirement
    ring.retire_data_keys(keep=new)
    assert old_wrapped not in (key_dir / "datakeys.json").read_text()
    after = ShopKeyring.load("S1", key_dir)
    assert sorted(after.data_keys) == [2]
    with pytest.raises(DecryptionError, match="data key v1, which shop S1's keyring does not hold"):
        after.unseal(old_blob, ctx)
    with pytest.raises(ConfigError, match="does not hold it"):
        after.retire_data_keys(keep=7)
