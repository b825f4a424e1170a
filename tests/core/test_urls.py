"""Every route's ``<int:...>`` matches only numbers an id column can hold: larger ones are a 404, never a 500."""
from __future__ import annotations

import re

import pytest
from werkzeug.routing import IntegerConverter

from core.urls import MAX_ID


def _int_routes(app):
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items() if isinstance(conv, IntegerConverter)]
        if ints:
            yield rule, ints


@pytest.mark.parametrize("too_big", [MAX_ID + 1, 4486691523, 10**20])
def test_an_id_no_integer_column_can_hold_is_not_found_on_every_route_and_method(app, as_user, too_big):
    admin = as_user("admin")
    checked = 0
    for rule, ints in _int_routes(app):
        values = {name: (too_big if name in ints else _sample(name)) for name in rule.arguments}
        path = _path(rule, values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            response = admin.get(path) if method == "GET" else admin.api(method, path, json={})
            assert response.status_code == 404, (method, rule.rule, path, response.status_code)
            checked += 1
    assert checked > 30  # the core's routes and the plugins'


def test_the_largest_id_still_reaches_the_view(app, as_user):
    response = as_user("admin").get(f"/imports/{MAX_ID}")
    assert response.status_code == 404  # the view's own answer: no such import
    assert app.url_map.bind("localhost").match(f"/imports/{MAX_ID}")[1] == {"import_id": MAX_ID}


def _sample(name: str) -> str:
    return {"plugin": "crm", "plural": "customers"}.get(name, "x")


def _path(rule, values: dict) -> str:
    """The rule's path with ``values`` in place of its variables (whatever their converter)."""
    return re.sub(r"<(?:[a-z]+:)?(\w+)>", lambda m: str(values[m.group(1)]), rule.rule)


def test_the_pattern_matches_exactly_the_numbers_up_to_the_bound():
    import random

    from core.urls import at_most

    for limit in (0, 7, 10, 99, 100, 120, 7310, MAX_ID):
        pattern = re.compile(at_most(limit) + r"\Z")
        numbers = [*range(min(limit + 30, 2000)), limit, limit + 1, 10 * limit + 9,
                   *(random.randrange(limit * 3 + 10) for _ in range(2000))]
        for n in numbers:
            assert bool(pattern.match(str(n))) == (n <= limit), (limit, n)
