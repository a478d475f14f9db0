"""Pseudonyms: keyed HMAC-SHA256, versioned, domain-separated, stable, and not a plain hash."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography.hazmat.primitives import hashes, hmac

from privacy.pseudonym import pseudonym, pseudonymise

KEY = bytes(range(32))


def test_a_pseudonym_is_the_versioned_hmac_sha256_of_domain_and_id_under_the_shop_key() -> None:
    p = pseudonym(KEY, "00141833")
    mac = hmac.HMAC(KEY, hashes.SHA256())  # an independent implementation of the same construction
    mac.update(b"v1|customer|00141833")
    assert p == "v1:" + mac.finalize().hex()


def test_pseudonyms_are_stable_for_a_key_and_differ_across_keys_domains_versions_and_ids() -> None:
    other_key = os.urandom(32)
    assert pseudonym(KEY, "00141833") == pseudonym(bytes(KEY), "00141833")
    variants = {
        pseudonym(KEY, "00141833"),
        pseudonym(other_key, "00141833"),
        pseudonym(KEY, "00141833", domain=b"household"),
        pseudonym(KEY, "00141833", version="v2"),
        pseudonym(KEY, "00141834"),
    }
    assert len(variants) == 5
    assert pseudonym(KEY, "x", version="v2").startswith("v2:")


def test_the_key_version_is_part_of_the_pseudonym_so_rekeyed_ones_never_collide() -> None:
    old, new = pseudonym(KEY, "42", version="v1"), pseudonym(KEY, "42", version="v2")
    assert old.split(":")[0] == "v1" and new.split(":")[0] == "v2"
    assert old.split(":")[1] != new.split(":")[1]


def test_no_unkeyed_hash_of_any_8_digit_id_matches_a_pseudonym() -> None:
    """Enumerating ids with plain SHA-256 (how unkeyed hashes are reversed) finds nothing."""
    target = pseudonym(KEY, "00123456").split(":")[1]
    for n in range(100_000, 200_000):
        cid = f"00{n:06d}"
        for text in (cid, f"v1|customer|{cid}"):
            assert hashlib.sha256(text.encode()).hexdigest() != target


def test_short_keys_and_ambiguous_domains_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 32 bytes"):
        pseudonym(b"short", "1")
    with pytest.raises(ValueError, match="must not contain"):
        pseudonym(KEY, "1", domain=b"a|b")


def test_pseudonymise_maps_each_distinct_id_once_to_its_pseudonym() -> None:
    ids = ["7", "8", "7", "9"]
    mapping = pseudonymise(KEY, ids)
    assert mapping == {cid: pseudonym(KEY, cid) for cid in ("7", "8", "9")}


@pytest.mark.parametrize("customer_id", ["00141833", "", "ünïcode-ид", "x" * 1000, "a|b:c"])
def test_one_shot_digest_is_byte_identical_to_the_hmac_object_construction(customer_id: str) -> None:
    import hmac as std_hmac

    message = b"v1|customer|" + customer_id.encode()
    assert pseudonym(KEY, customer_id) == "v1:" + std_hmac.new(KEY, message, hashlib.sha256).hexdigest()
    assert pseudonym(KEY + b"\x00" * 40, customer_id) == "v1:" + std_hmac.new(KEY + b"\x00" * 40, message,
                                                                               hashlib.sha256).hexdigest()
