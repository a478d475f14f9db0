"""Ta Feng is split into one byte-faithful raw export per shop, verified by sha256."""

import zipfile
from pathlib import Path

import pytest

from fedprice.errors import BadSignatureError
from simulation.tafeng import INNER, read_csv_bytes, write_shop_exports

SAMPLE = (
    '\ufeff"TRANSACTION_DT","CUSTOMER_ID","AGE_GROUP","PIN_CODE","PRODUCT_SUBCLASS","PRODUCT_ID","AMOUNT","ASSET","SALES_PRICE"\r\n'
    '"11/1/2000","01104905","45-49","115","110411","4710199010372","2","24","30"\r\n'
    '"11/1/2000","00418683","45-49","221","120107","4710857472535","1","48","46"\r\n'
    '"11/2/2000","00418684","45-49","221","120107","4710857472535","1","48","46"\r\n'
).encode()


def test_split_keeps_raw_ids_bom_and_lines(tmp_path: Path) -> None:
    out = write_shop_exports(SAMPLE, tmp_path, shops=("115", "221"))
    assert {s.shop_id: (s.rows, s.customers) for s in out} == {"115": (1, 1), "221": (2, 2)}
    text = (tmp_path / "115" / "raw" / "export.csv").read_bytes()
    assert text.startswith(b"\xef\xbb\xbf\"TRANSACTION_DT\"") and b'"01104905"' in text


def test_max_customers_keeps_whole_customers(tmp_path: Path) -> None:
    out = write_shop_exports(SAMPLE, tmp_path, shops=("221",), max_customers=1)
    assert out[0].customers == 1 and out[0].rows == 1


def test_a_wheel_with_other_data_is_refused(tmp_path: Path) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr(INNER, b"not the real archive")
    with pytest.raises(BadSignatureError, match="does not match the pinned"):
        read_csv_bytes(wheel)
