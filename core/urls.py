"""URL converters: every ``<int:...>`` in a route matches only numbers an id column can hold.

Ids are ``INTEGER`` columns (32-bit). Werkzeug's ``int`` converter takes any number of digits, so
``/imports/99999999999`` used to reach the view, and each view had to refuse the number itself
before the database was asked to compare it (PostgreSQL errors on an out-of-range integer). With
the bounded converter installed as ``int`` the route does not match and the answer is a 404,
in every route of the core and of every plugin, with nothing to remember in each view.
"""
from __future__ import annotations

from werkzeug.routing import IntegerConverter

#: The largest value of an ``INTEGER`` column.
MAX_ID = 2**31 - 1


class BoundedInt(IntegerConverter):
    """``int`` bounded to what an ``INTEGER`` column holds (a route may still pass its own bounds)."""

    def __init__(self, url_map, fixed_digits: int = 0, min: int | None = None, max: int | None = None,
                 signed: bool = False) -> None:
        if min is None and signed:
            min = -MAX_ID - 1
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=MAX_ID if max is None else max,
                         signed=signed)


def init_app(app) -> None:
    """Install the bounded converter as ``int``: call before any blueprint is registered."""
    app.url_map.converters["int"] = BoundedInt
