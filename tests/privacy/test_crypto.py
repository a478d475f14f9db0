"""Encryption at rest: AES-256-GCM with random nonces; any wrong key, tampered byte, truncation or move fails clearly."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from privacy.crypto import MAGIC, NONCE_BYTES, DecryptionError, associated_data, key_version_of, open_sealed, seal
from privacy.keys import ShopKeyring

CTX: dict[str, str | int] = {"shop": "S1", "table": "customer_features", "schema": 1, "pseudonym": "v1:ab12"}
PLAIN = b'{"stats": {"n_visits": 3}}'


def test_a_sealed_value_is_header_random_nonce_and_aes_gcm_ciphertext_with_tag() -> None:
    key = os.urandom(32)
    a, b = seal(key, 3, PLAIN, CTX), seal(key, 3, PLAIN, CTX)
    assert a[:4] == MAGIC and key_version_of(a) == 3
    assert len(a) == 8 + NONCE_BYTES + len(PLAIN) + 16
    assert a[8:20] != b[8:20] and a != b  # equal plaintexts: different nonces, different ciphertexts
    assert PLAIN not in a
    assert open_sealed(key, a, CTX) == PLAIN


def test_aes_256_only() -> None:
    with pytest.raises(ValueError, match="32-byte key"):
        seal(os.urandom(16), 1, PLAIN, CTX)


def test_the_associated_data_binds_every_context_entry_and_the_key_version() -> None:
    aad = associated_data(CTX, 3)
    assert aad == b"key_version=3;pseudonym=v1:ab12;schema=1;shop=S1;table=customer_features"
    with pytest.raises(ValueError, match="must not contain"):
        associated_data({"shop": "S1;table=x"}, 1)


def test_a_wrong_key_fails_with_a_clear_error() -> None:
    blob = seal(os.urandom(32), 1, PLAIN, CTX)
    with pytest.raises(DecryptionError, match="cannot decrypt customer features: wrong key, tampered"):
        open_sealed(os.urandom(32), blob, CTX, what="customer features")


@pytest.mark.parametrize("moved", [
    {"shop": "S2"},  # another shop's row
    {"pseudonym": "v1:cd34"},  # another customer's row
    {"table": "train_examples"},  # another table
    {"schema": 2},  # another schema version
])
def test_a_value_moved_to_another_shop_row_table_or_schema_fails(moved: dict[str, str | int]) -> None:
    key = os.urandom(32)
    blob = seal(key, 1, PLAIN, CTX)
    with pytest.raises(DecryptionError, match="belongs to another shop/table/row"):
        open_sealed(key, blob, {**CTX, **moved})


def test_every_single_flipped_byte_fails_never_garbage() -> None:
    key = os.urandom(32)
    blob = seal(key, 1, PLAIN, CTX)
    for i in range(len(blob)):
        bad = bytearray(blob)
        bad[i] ^= 0x01
        with pytest.raises(DecryptionError, match="cannot decrypt"):
            open_sealed(key, bytes(bad), CTX)


def test_every_truncation_fails_never_garbage() -> None:
    key = os.urandom(32)
    blob = seal(key, 1, PLAIN, CTX)
    for n in range(len(blob)):
        with pytest.raises(DecryptionError, match="cannot decrypt"):
            open_sealed(key, blob[:n], CTX)


def test_the_keyring_refuses_other_keys_relabelled_versions_and_other_shops(tmp_path: Path) -> None:
    ring = ShopKeyring.load("S1", tmp_path / "s1" / "keys")
    other = ShopKeyring.load("S2", tmp_path / "s2" / "keys")
    ctx: dict[str, str | int] = {"table": "train_examples", "schema": 1}
    blob = ring.seal(PLAIN, ctx)
    assert ring.unseal(blob, ctx) == PLAIN
    with pytest.raises(DecryptionError, match="cannot decrypt"):
        other.unseal(blob, ctx)  # another shop: another key and another shop in the AAD
    ring.add_data_key()  # now v1 and v2 are both held: relabel a v1 blob as v2
    relabelled = blob[:4] + (2).to_bytes(4, "big") + blob[8:]
    with pytest.raises(DecryptionError, match="cannot decrypt"):
        ring.unseal(relabelled, ctx)
    unknown = blob[:4] + (9).to_bytes(4, "big") + blob[8:]
    with pytest.raises(DecryptionError, match="data key v9, which shop S1's keyring does not hold"):
        ring.unseal(unknown, ctx, what="training examples")
