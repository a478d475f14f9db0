"""Keyed, versioned, domain-separated customer pseudonyms (HMAC-SHA256), never a plain hash."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from privacy.keys import PSEUDONYM_KEY_VERSION

CUSTOMER_DOMAIN = b"customer"


def pseudonym(key: bytes, customer_id: str, *, domain: bytes = CUSTOMER_DOMAIN, version: str = PSEUDONYM_KEY_VERSION) -> str:
    """Return `version:hex(HMAC-SHA256(key, version|domain|id))` for one raw customer id."""
    mac = hmac.new(key, version.encode() + b"|" + domain + b"|" + customer_id.encode(), hashlib.sha256)
    return f"{version}:{mac.hexdigest()}"


def pseudonymise(key: bytes, customer_ids: Iterable[str], *, domain: bytes = CUSTOMER_DOMAIN) -> dict[str, str]:
    """Map each distinct raw id to its pseudonym (one HMAC per distinct id)."""
    return {cid: pseudonym(key, cid, domain=domain) for cid in set(customer_ids)}
