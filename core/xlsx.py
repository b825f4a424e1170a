"""XLSX workbooks written row by row (XlsxWriter's constant-memory mode: memory stays flat), text kept as text.

The open export (``core.export``), the list export and the import templates and reject files
(``core.imports``) write through here, so every workbook the product makes follows the same
rules: characters XML cannot hold are dropped, text longer than Excel's cell limit is cut (and
says so), text is always stored as text (``=SUM(...)`` or ``#N/A`` never becomes a formula or an
error value) and numbers and booleans as what they are. Reading a workbook (an import) is
openpyxl's job, in ``core.imports``.
"""
from __future__ import annotations

import math
import re
from decimal import Decimal

from flask_babel import gettext as _

from core.errors import BusinessRuleError

MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
#: Excel's limit for one cell, in UTF-16 units; longer text is cut (and said so in the cell).
MAX_CELL = 32767
#: Excel's rows per sheet.
MAX_ROWS = 1_048_576
_ILLEGAL_XML = re.compile(r"[\000-\010]|[\013-\014]|[\016-\037]")
_OPTIONS = {"constant_memory": True, "strings_to_numbers": False, "strings_to_formulas": False,
            "strings_to_urls": False}


def write(target, sheets) -> list[int]:
    """Write a workbook to ``target`` (a path or a binary file) with one sheet per ``(title, rows)``.

    ``rows`` is any iterable of rows (values: ``None``, numbers, booleans or text; anything else is
    written as its text), taken one at a time; ``title`` ``None`` gives Excel's default. Returns
    how many rows each sheet got. A sheet longer than Excel can hold is refused (``BusinessRuleError``).
    """
    import xlsxwriter

    workbook = xlsxwriter.Workbook(target, _OPTIONS)
    try:
        return [_write_rows(workbook.add_worksheet(title), rows) for title, rows in sheets]
    finally:
        workbook.close()


def _write_rows(sheet, rows) -> int:
    string, number, boolean = sheet.write_string, sheet.write_number, sheet.write_boolean
    count = 0
    for count, row in enumerate(rows, start=1):
        if count > MAX_ROWS:
            raise too_many_rows()
        r = count - 1
        for c, value in enumerate(row):
            kind = type(value)
            if value is None or value == "":
                continue  # an empty cell, as Excel keeps one
            if kind is str:
                string(r, c, _text(value))
            elif kind is bool:
                boolean(r, c, value)
            elif (kind is int or kind is float or kind is Decimal) and _finite(value):
                number(r, c, value)
            else:
                string(r, c, _text(str(value)))
    return count


def too_many_rows() -> BusinessRuleError:
    """The error for rows that would not fit in one sheet."""
    return BusinessRuleError(_("An XLSX sheet holds at most %(rows)s rows: export CSV instead.", rows=f"{MAX_ROWS:,}"))


def _finite(value) -> bool:
    """Whether Excel can hold ``value`` as a number (not NaN nor an infinity: those are written as text)."""
    return value.is_finite() if type(value) is Decimal else type(value) is int or math.isfinite(value)


def _text(value: str) -> str:
    if not value.isprintable() and _ILLEGAL_XML.search(value):  # isprintable: a quick no for most text
        value = _ILLEGAL_XML.sub("", value)
    if len(value) > MAX_CELL // 2 and len(encoded := value.encode("utf-16-le")) > 2 * MAX_CELL:
        # Excel counts UTF-16 units (an emoji is two): cut at a whole character, and say so.
        value = encoded[:2 * (MAX_CELL - 1)].decode("utf-16-le", errors="ignore") + "…"
    return value
