"""Every workbook the product writes keeps text as text and numbers as numbers (``core.xlsx``)."""
from __future__ import annotations

import io
from decimal import Decimal

from openpyxl import load_workbook

from core import xlsx


def _written(rows):
    workbook = xlsx.workbook()
    sheet = workbook.create_sheet("s")
    count = xlsx.append_rows(sheet, rows)
    buffer = io.BytesIO()
    workbook.save(buffer)
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


def test_characters_xml_cannot_hold_are_dropped_and_overlong_text_is_cut():
    _count, (row,) = _written([["a\x00b\x07c", "长" * (xlsx.MAX_CELL + 10)]])
    assert row[0].value == "abc"
    assert len(row[1].value) == xlsx.MAX_CELL and row[1].value.endswith("…")
