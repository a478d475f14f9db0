"""Ingestion: types right, every bad row quarantined with its reason and line number, nothing lost."""

from pathlib import Path

import pandas as pd
import pytest

from client.ingest import ingest_export
from fedprice.errors import InvalidDataError

HEADER = ('"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS","PRODUCT_ID","AMOUNT","ASSET",'
          '"SALES_PRICE"\r\n')


def _write(path: Path, rows: list[str]) -> Path:
    path.write_bytes(("\ufeff" + HEADER + "".join(r + "\r\n" for r in rows)).encode())
    return path


def test_types_bom_leading_zeros_and_dates(tmp_path: Path) -> None:
    src = _write(tmp_path / "e.csv", ['"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"'])
    res = ingest_export(src, shop_id="115", quarantine_path=tmp_path / "q.csv")
    row = res.frame.iloc[0]
    assert row["customer_id"] == "01104905"
    assert row["date"] == pd.Timestamp("2000-11-01")
    assert row["unit_price"] == 15.0 and row["unit_cost"] == 12.0
    assert res.n_quarantined == 0 and not (tmp_path / "q.csv").exists()


def test_bad_rows_are_quarantined_with_reasons_and_counted(tmp_path: Path) -> None:
    rows = [
        '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"',
        '"13/45/2000","01104905","45-49","115","110411","4710199010372","1","24","30"',  # line 3: bad date
        '"11/2/2000","","45-49","115","110411","4710199010372","1","24","30"',  # line 4: no customer
        '"11/2/2000","00000001","45-49","221","110411","4710199010372","1","24","30"',  # line 5: other shop
        '"11/2/2000","00000002","45-49","115","110411","4710199010372","0","24","-3"',  # line 6: two problems
        '"11/2/2000","00000003","45-49","115"',  # line 7: short row
    ]
    q = tmp_path / "q.csv"
    res = ingest_export(_write(tmp_path / "e.csv", rows), shop_id="115", quarantine_path=q)
    assert len(res.frame) == 1
    assert res.n_rows == 6 and res.n_quarantined == 5
    quarantined = pd.read_csv(q, dtype=str).set_index("row")
    assert "TRANSACTION_DT" in quarantined.loc["3", "reason"]
    assert "CUSTOMER_ID" in quarantined.loc["4", "reason"]
    assert "PIN_CODE does not match shop 115" in quarantined.loc["5", "reason"]
    assert "AMOUNT" in quarantined.loc["6", "reason"] and "SALES_PRICE" in quarantined.loc["6", "reason"]
    assert "4 fields, expected 9" in quarantined.loc["7", "reason"]
    assert res.reasons["AMOUNT is not a positive whole number"] == 1


def test_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    src = tmp_path / "e.csv"
    src.write_text('"TRANSACTION_DT","CUSTOMER_ID"\n"11/1/2000","1"\n')
    with pytest.raises(InvalidDataError, match=r"e\.csv, row 1: missing column\(s\) AGE_GROUP"):
        ingest_export(src, shop_id="115", quarantine_path=tmp_path / "q.csv")


def test_a_previous_quarantine_file_is_replaced_not_appended(tmp_path: Path) -> None:
    q = tmp_path / "q.csv"
    q.write_text("stale")
    src = _write(tmp_path / "e.csv", ['"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"'])
    ingest_export(src, shop_id="115", quarantine_path=q)
    assert not q.exists()
