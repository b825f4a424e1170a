"""Every workbook the product writes keeps text as text and numbers as numbers (``core.xlsx``)."""
from __future__ import annotations

import io
from datetime import date
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from core import xlsx
from core.errors import BusinessRuleError


def _written(rows):
    buffer = io.BytesIO()
    (count,) = xlsx.write(buffer, [("s", iter(rows))])
    cells = [list(r) for r in load_workbook(io.BytesIO(buffer.getvalue())).active.iter_rows()]
    return count, cells


def test_text_that_looks_like_a_formula_or_an_error_stays_text_and_numbers_stay_numbers():
    count, (row,) = _written([["=HYPERLINK(\"http://x\")", "#N/A", "客户", 12, 1.5, Decimal("3.25"), True, None, "-1"]])
    assert count == 1
    assert [c.value for c in row[:3]] == ["=HYPERLINK(\"http://x\")", "#N/A", "客户"]
    assert [c.data_type for c in row[:3]] == ["s", "s", "s"]
    assert [c.value for c in row[3:8]] == [12, 1.5, 3.25, True, None]
    assert row[3].data_type == "n" and row[6].data_type == "b"
    assert row[8].value == "-1" and row[8].data_type == "s"


def test_what_excel_cannot_hold_as_a_number_is_written_as_its_text():
    _count, (row,) = _written([[float("nan"), Decimal("Infinity"), date(2026, 12, 7), 2**40]])
    assert [c.value for c in row] == ["nan", "Infinity", "2026-12-07", 2**40]
    assert [c.data_type for c in row] == ["s", "s", "s", "n"]


def test_every_sheet_gets_its_title_and_rows_and_a_sheet_too_long_for_excel_is_refused(monkeypatch):
    buffer = io.BytesIO()
    assert xlsx.write(buffer, [("客户", iter([["a"], ["b"]])), ("空", iter([]))]) == [2, 0]
    book = load_workbook(io.BytesIO(buffer.getvalue()))
    assert book.sheetnames == ["客户", "空"]
    assert [r[0].value for r in book["客户"].iter_rows()] == ["a", "b"]
    monkeypatch.setattr(xlsx, "MAX_ROWS", 3)
    with pytest.raises(BusinessRuleError, match="CSV"):
        xlsx.write(io.BytesIO(), [("s", iter([[1]] * 4))])


def test_characters_xml_cannot_hold_are_dropped_and_overlong_text_is_cut():
    _count, (row,) = _written([["a\x00b\x07c", "长" * (xlsx.MAX_CELL + 10), "😀" * xlsx.MAX_CELL, "", "x"]])
    assert row[0].value == "abc"
    assert len(row[1].value) == xlsx.MAX_CELL and row[1].value.endswith("…")
    # Excel counts an emoji as two units: the cut keeps whole ones and still says so.
    assert row[2].value == "😀" * ((xlsx.MAX_CELL - 1) // 2) + "…"
    assert row[3].value is None and row[4].value == "x"  # empty text is an empty cell


def test_text_read_back_by_the_import_is_the_text_written():
    from core.imports.service import _xlsx_rows

    texts = ["第一行\r\n第二行", "_x0041_ stays as typed", "tab\there", "a_x"]
    buffer = io.BytesIO()
    xlsx.write(buffer, [(None, iter([texts]))])
    assert list(_xlsx_rows(buffer.getvalue())) == [texts]
