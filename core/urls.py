"""URL converters: every ``<int:...>`` in a route matches only numbers an id column can hold.

Ids are ``INTEGER`` columns (32-bit). Werkzeug's ``int`` converter takes any number of digits, so
``/imports/99999999999`` used to reach the view, and each view had to refuse the number itself
before the database was asked to compare it (PostgreSQL errors on an out-of-range integer). With
the bounded converter installed as ``int`` the route does not match and the answer is a 404,
in every route of the core and of every plugin, with nothing to remember in each view.
"""
from __future__ import annotations

from werkzeug.routing import BaseConverter, IntegerConverter

#: The largest value of an ``INTEGER`` column.
MAX_ID = 2**31 - 1


def at_most(limit: int) -> str:
    """A regular expression matching the decimal numbers ``0`` to ``limit`` (no leading zeros)."""
    digits = str(limit)
    if len(digits) == 1:
        return f"[0-{digits}]"
    shorter = ["[0-9]"] + [f"[1-9][0-9]{{{n - 1}}}" for n in range(2, len(digits))]
    same_length = []
    for i, digit in enumerate(digits):
        low = "1" if i == 0 else "0"
        if int(digit) > int(low):
            rest = len(digits) - i - 1
            same_length.append(f"{digits[:i]}[{low}-{int(digit) - 1}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    same_length.append(digits)
    return "(?:" + "|".join(shorter + same_length) + ")"


class BoundedInt(IntegerConverter):
    """``int`` bounded to what an ``INTEGER`` column holds (a route may still pass its own bounds).

    The bound is in the converter's pattern, not only in ``to_python``: Werkzeug answers 405, not
    404, for a path whose pattern matches a rule with other methods, even when the number is then
    refused, so ``DELETE /api/v1/notes/notes/4486691523`` must not match at all.
    """

    def __init__(self, url_map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        if min is None and signed:
            min = -MAX_ID - 1
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max,
                         signed=signed)
        if not fixed_digits and not signed and (min or 0) >= 0:
            self.regex = at_most(self.max)


class Name(BaseConverter):
    """``<name:...>``: a plugin's or a resource's name in a generic route (``/<name:plugin>/<name:plural>``).

    Never all digits, so ``/api/v1/webhooks/2147483648`` is no resource list: a number too large
    for a route's ``<int:>`` finds no route at all (404) rather than a generic one with other
    methods (405).
    """

    regex = "[A-Za-z_][A-Za-z0-9_-]*"


def init_app(app) -> None:
    """Install the bounded converter as ``int`` and ``name``: call before any blueprint is registered."""
    app.url_map.converters["int"] = BoundedInt
    app.url_map.converters["name"] = Name
