"""Read a shop's raw sales export, validate every row, and quarantine the bad ones with reasons."""

from __future__ import annotations

import csv
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from demand.schema import AGE_GROUPS
from fedprice.errors import InvalidDataError
from privacy.keys import atomic_write

log = logging.getLogger(__name__)

EXPORT_COLUMNS: tuple[str, ...] = (
    "TRANSACTION_DT", "CUSTOMER_ID", "AGE_GROUP", "PIN_CODE", "PRODUCT_SUBCLASS", "PRODUCT_ID",
    "AMOUNT", "ASSET", "SALES_PRICE",
)
MAX_UNITS = 100_000


@dataclass
class IngestResult:
    """A typed frame of valid rows plus what was quarantined and why."""

    frame: pd.DataFrame
    n_rows: int
    n_quarantined: int
    reasons: Counter[str] = field(default_factory=Counter)
    quarantine_path: Path | None = None


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]], list[tuple[int, list[str], str]]]:
    """Split a CSV into header, well-formed rows and malformed rows, keeping file line numbers."""
    good: list[tuple[int, list[str]]] = []
    bad: list[tuple[int, list[str], str]] = []
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InvalidDataError(f"{path}: file is empty (expected a header row)") from None
        missing = [c for c in EXPORT_COLUMNS if c not in header]
        if missing:
            raise InvalidDataError(f"{path}, row 1: missing column(s) {', '.join(missing)}; found {', '.join(header)}")
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                bad.append((line, row, f"row has {len(row)} fields, expected {len(header)}"))
            else:
                good.append((line, row))
    return header, good, bad


def _numeric(series: pd.Series) -> pd.Series:
    return pd.to_numeric(series.str.strip(), errors="coerce")


def validate(raw: pd.DataFrame, *, shop_id: str) -> tuple[pd.DataFrame, pd.Series]:
    """Return (typed frame, reasons) where reasons is '' for valid rows; collects every problem per row."""
    reasons_arr = np.full(len(raw), "", dtype=object)

    def flag(mask: pd.Series, message: str) -> None:
        nonlocal reasons_arr
        m = mask.to_numpy(dtype=bool)
        reasons_arr = np.where(m & (reasons_arr == ""), message, np.where(m, reasons_arr + "; " + message, reasons_arr))

    date = pd.to_datetime(raw["TRANSACTION_DT"].str.strip(), format="%m/%d/%Y", errors="coerce")
    flag(date.isna(), "TRANSACTION_DT is not a m/d/yyyy date")
    cust = raw["CUSTOMER_ID"].str.strip()
    flag(~cust.str.fullmatch(r"[0-9A-Za-z_-]{1,64}"), "CUSTOMER_ID is empty or malformed")
    age = raw["AGE_GROUP"].str.strip()
    flag(~(age.isin(AGE_GROUPS) | (age == "")), "AGE_GROUP is not a known age band")
    flag(raw["PIN_CODE"].str.strip() != shop_id, f"PIN_CODE does not match shop {shop_id}")
    sub = raw["PRODUCT_SUBCLASS"].str.strip()
    flag(~sub.str.fullmatch(r"[0-9A-Za-z_-]{1,32}"), "PRODUCT_SUBCLASS is empty or malformed")
    prod = raw["PRODUCT_ID"].str.strip()
    flag(~prod.str.fullmatch(r"[0-9A-Za-z_-]{1,32}"), "PRODUCT_ID is empty or malformed")
    amount = _numeric(raw["AMOUNT"])
    flag(~((amount > 0) & (amount <= MAX_UNITS) & (amount == np.floor(amount))), "AMOUNT is not a positive whole number")
    asset = _numeric(raw["ASSET"])
    flag(~(np.isfinite(asset) & (asset >= 0)), "ASSET is not a non-negative number")
    sales = _numeric(raw["SALES_PRICE"])
    flag(~(np.isfinite(sales) & (sales > 0)), "SALES_PRICE is not a positive number")

    reasons = pd.Series(reasons_arr, index=raw.index, dtype=object)
    frame = pd.DataFrame(
        {
            "date": date,
            "customer_id": cust,
            "age_group": age,
            "subclass": sub,
            "product_id": prod,
            "amount": amount,
            "unit_price": sales / amount,
            "unit_cost": asset / amount,
        }
    )
    return frame, reasons


def ingest_export(path: Path, *, shop_id: str, quarantine_path: Path) -> IngestResult:
    """Ingest one shop export: valid rows typed, bad rows written to `quarantine_path` with reasons."""
    header, good, bad = _read_rows(path)
    raw = pd.DataFrame([r for _, r in good], columns=header, dtype=str) if good else pd.DataFrame(columns=header, dtype=str)
    raw.index = pd.Index([line for line, _ in good], name="row")
    frame, reasons = validate(raw, shop_id=shop_id) if len(raw) else (pd.DataFrame(), pd.Series(dtype=str))
    ok = reasons == "" if len(raw) else pd.Series(dtype=bool)

    quarantined = raw[~ok].assign(reason=reasons[~ok]) if len(raw) else raw.assign(reason=[])
    if bad:
        malformed = pd.DataFrame(
            {"row": [line for line, _, _ in bad], "raw": [",".join(r) for _, r, _ in bad], "reason": [m for _, _, m in bad]}
        ).set_index("row")
        quarantined = pd.concat([quarantined, malformed])
    counts: Counter[str] = Counter()
    for text in quarantined["reason"] if len(quarantined) else []:
        counts.update(part for part in str(text).split("; ") if part)
    if len(quarantined):
        atomic_write(quarantine_path, quarantined.sort_index().to_csv().encode())
        log.warning("shop %s: quarantined %d of %d rows from %s -> %s", shop_id, len(quarantined),
                    len(good) + len(bad), path, quarantine_path)
    elif quarantine_path.exists():
        quarantine_path.unlink()
    typed = frame[ok].reset_index(drop=True) if len(raw) else frame
    if len(typed) == 0:
        raise InvalidDataError(f"{path}: no valid rows ({len(quarantined)} quarantined, see {quarantine_path})")
    typed["amount"] = typed["amount"].astype(np.int64)
    return IngestResult(typed, len(good) + len(bad), len(quarantined), counts, quarantine_path if len(quarantined) else None)
