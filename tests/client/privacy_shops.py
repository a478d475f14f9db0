"""Helpers for the shop-side privacy tests: private copies of the small synthetic shops, and a byte scanner."""

from __future__ import annotations

import csv
import hashlib
import io
import re
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from client.prepare import prepare_shop
from client.storage import ShopPaths

SHOPS = ("S1", "S2", "S3")


def raw_ids(export: Path) -> list[str]:
    """The distinct raw customer ids of an export, in first-seen order."""
    with export.open(newline="", encoding="utf-8-sig") as fh:
        return list(dict.fromkeys(row["CUSTOMER_ID"].strip() for row in csv.DictReader(fh)))


def copy_exports(market_dir: Path, root: Path, shops: Iterable[str] = SHOPS, *,
                 distinctive_ids: bool = False) -> dict[str, list[str]]:
    """Copy the shops' raw exports under `root`; optionally give every customer a fresh random raw id.

    Distinctive ids ("cx-" + 12 random letters/digits) make a leak scan exact: an 8-digit id would also
    match by chance inside hex pseudonyms and digests. Returns each shop's raw ids.
    """
    ids: dict[str, list[str]] = {}
    for shop in shops:
        src = market_dir / shop / "raw" / "export.csv"
        dst = root / shop / "raw" / "export.csv"
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not distinctive_ids:
            shutil.copyfile(src, dst)
            ids[shop] = raw_ids(dst)
            continue
        mapping: dict[str, str] = {}
        with src.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
        col = rows[0].index("CUSTOMER_ID")
        for row in rows[1:]:
            row[col] = mapping.setdefault(row[col], "cx-" + secrets.token_hex(6))
        out = io.StringIO()
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\r\n").writerows(rows)
        dst.write_bytes(("\ufeff" + out.getvalue()).encode())
        ids[shop] = list(mapping.values())
    return ids


def prepare_copies(root: Path, feature_store: Path, shops: Iterable[str] = SHOPS) -> dict[str, ShopPaths]:
    """Run the real shop preparation for each copied shop."""
    out = {}
    for shop in shops:
        paths = ShopPaths(shop, root / shop)
        prepare_shop(paths, feature_store=feature_store)
        out[shop] = paths
    return out


@dataclass(frozen=True)
class Finding:
    """A raw id (or its unkeyed digest) found somewhere it must not be."""

    where: str
    customer_id: str
    form: str


ID_PATTERN = rb"cx-[0-9a-f]{12}"  # the distinctive raw ids copy_exports hands out
_CANDIDATES = re.compile(rb"(?=(" + ID_PATTERN + rb"|[0-9a-fA-F]{64}))")


def needles(customer_ids: Iterable[str]) -> dict[bytes, tuple[str, str]]:
    """Byte patterns that betray a raw id: the id itself and its unkeyed SHA-256 hex (either case)."""
    out: dict[bytes, tuple[str, str]] = {}
    for cid in customer_ids:
        out[cid.encode()] = (cid, "raw id")
        out[hashlib.sha256(cid.encode()).hexdigest().encode()] = (cid, "unkeyed sha256 hex")
    return out


def scan(blobs: dict[str, bytes], customer_ids: Iterable[str]) -> list[Finding]:
    """Every occurrence of a needle in any blob, at any offset (one linear regex pass per blob)."""
    pats = needles(customer_ids)
    found = []
    for where, data in blobs.items():
        for m in _CANDIDATES.finditer(data):
            hit = pats.get(m.group(1).lower()) or pats.get(m.group(1))
            if hit is not None:
                found.append(Finding(where, *hit))
    return found


def files_under(*roots: Path, skip: Iterable[Path] = ()) -> dict[str, bytes]:
    """All files below `roots` (minus `skip` subtrees), read as bytes and keyed by path."""
    skipped = [s.resolve() for s in skip]
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            if p.is_file() and not any(p.resolve().is_relative_to(s) for s in skipped):
                out[str(p)] = p.read_bytes()
    return out
