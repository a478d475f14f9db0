"""Keyed, versioned, domain-separated customer pseudonyms (HMAC-SHA256), never a plain hash.

pseudonym = "<version>:" + hex(HMAC-SHA256(shop pseudonym key, "<version>|<domain>|<raw id>")). The key
is the shop's 256-bit `pseudonym.key` (kept apart from the data keys); the version names that key, so
pseudonyms under a future key can never be confused with today's; the domain separates purposes.
Training (client.prepare) and serving (the pricing API) call the same function with the same key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable

from privacy.keys import KEY_BYTES, PSEUDONYM_KEY_VERSION

CUSTOMER_DOMAIN = b"customer"


def pseudonym(key: bytes, customer_id: str, *, domain: bytes = CUSTOMER_DOMAIN, version: str = PSEUDONYM_KEY_VERSION) -> str:
    """Return `version:hex(HMAC-SHA256(key, version|domain|id))` for one raw customer id."""
    if len(key) < KEY_BYTES:
        raise ValueError(f"pseudonym key must have at least {KEY_BYTES} bytes, got {len(key)}")
    if b"|" in domain or "|" in version or ":" in version:
        raise ValueError("pseudonym domain and version must not contain '|' (nor ':' in the version)")
    mac = hmac.digest(key, version.encode() + b"|" + domain + b"|" + customer_id.encode(), "sha256")  # one-shot, in C
    return f"{version}:{mac.hex()}"


def pseudonymise(key: bytes, customer_ids: Iterable[str], *, domain: bytes = CUSTOMER_DOMAIN) -> dict[str, str]:
    """Map each distinct raw id to its pseudonym (one HMAC per distinct id)."""
    return {cid: pseudonym(key, cid, domain=domain) for cid in set(customer_ids)}
