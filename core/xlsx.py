"""XLSX sheets written row by row (openpyxl's write-only mode: memory stays flat), text kept as text.

The open export (``core.export``), the list export and the import templates (``core.imports``)
write through here, so every workbook the product makes follows the same rules: characters XML
cannot hold are dropped, text longer than Excel's cell limit is cut (and says so), and text that
Excel would read as a formula or an error value (``=SUM(...)``, ``#N/A``) is stored as text.
"""
from __future__ import annotations

import re
from decimal import Decimal

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Excel's limit for one cell; longer text is cut (and said so in the cell).
MAX_CELL = 32767
_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_AS_IS = frozenset({int, float, bool, Decimal, type(None)})


def workbook():
    """A new write-only workbook; add sheets with ``create_sheet(title)``, then ``save(target)``."""
    from openpyxl import Workbook

    return Workbook(write_only=True)


def append_rows(sheet, rows) -> int:
    """Append each row of ``rows`` (values: ``None``, numbers, booleans or text) to ``sheet``; how many.

    Plain values go to openpyxl as they are (it reuses one cell object for them, which is what
    keeps a 100,000-row export fast); only text it would not store as text gets a cell of its own.
    """
    count = 0
    for row in rows:
        sheet.append([value if type(value) in _AS_IS else _text(sheet, value) for value in row])
        count += 1
    return count


def _text(sheet, value):
    value = value if type(value) is str else str(value)
    if _ILLEGAL_XML.search(value):
        value = _ILLEGAL_XML.sub("", value)
    if len(value) > MAX_CELL:
        value = value[:MAX_CELL - 1] + "…"
    if value.startswith(("=", "#")):
        from openpyxl.cell import WriteOnlyCell

        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"  # text stays text: never a formula or an error value
        return cell
    return value
