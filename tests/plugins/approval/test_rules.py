"""The rule interpreter: properties (hypothesis) and the documented examples."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings, strategies as st

from plugins.approval import rules

FIELDS = st.sampled_from(["amount", "form.amount", "reason", "initiator.department_id", "department.code",
                          "form.missing", "initiator.roles", "tags"])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.text(max_size=8),
                    st.decimals(allow_nan=False, allow_infinity=False, places=2).map(str),
                    st.floats(allow_nan=False, allow_infinity=False))


def comparison():
    plain = st.builds(lambda f, o, v: {"field": f, "op": o, "value": v}, FIELDS,
                      st.sampled_from(["=", "!=", ">", ">=", "<", "<=", "contains"]), SCALARS)
    listed = st.builds(lambda f, o, v: {"field": f, "op": o, "value": v}, FIELDS,
                       st.sampled_from(["in", "not_in"]), st.lists(SCALARS, max_size=4))
    between = st.builds(lambda f, a, b: {"field": f, "op": "between", "value": [a, b]}, FIELDS, SCALARS, SCALARS)
    return st.one_of(plain, listed, between)


RULES = st.recursive(comparison(), lambda children: st.one_of(
    st.builds(lambda xs: {"all": xs}, st.lists(children, max_size=4)),
    st.builds(lambda xs: {"any": xs}, st.lists(children, max_size=4)),
    st.builds(lambda x: {"not": x}, children)), max_leaves=12)

SNAPSHOTS = st.fixed_dictionaries({
    "form": st.fixed_dictionaries({"amount": SCALARS, "reason": SCALARS}),
    "initiator": st.fixed_dictionaries({"department_id": st.integers(1, 9), "roles": st.lists(st.text(max_size=3))}),
    "department": st.one_of(st.none(), st.fixed_dictionaries({"code": st.text(max_size=5)})),
    "tags": st.one_of(st.none(), st.lists(SCALARS, max_size=3), st.text(max_size=5)),
})


@settings(max_examples=300, deadline=None)
@given(RULES, SNAPSHOTS)
def test_random_valid_rules_validate_and_never_raise(rule, snapshot):
    assert rules.validate(rule) == []
    assert rules.evaluate(rule, snapshot) in (True, False)


@settings(max_examples=200, deadline=None)
@given(RULES, SNAPSHOTS)
def test_not_inverts(rule, snapshot):
    assert rules.evaluate({"not": rule}, snapshot) is (not rules.evaluate(rule, snapshot))


@settings(max_examples=200, deadline=None)
@given(st.lists(RULES, max_size=4), SNAPSHOTS)
def test_all_and_any_agree_with_python(items, snapshot):
    values = [rules.evaluate(r, snapshot) for r in items]
    assert rules.evaluate({"all": items}, snapshot) is all(values)
    assert rules.evaluate({"any": items}, snapshot) is any(values)


def test_empty_all_is_true_and_empty_any_is_false():
    assert rules.evaluate({"all": []}, {}) is True
    assert rules.evaluate({"any": []}, {}) is False


BAD = [
    ({"all": [{"field": "amount", "op": ">", "value": 1}, {"field": "amount", "op": "~", "value": 1}]}, "all[1].op"),
    ({"any": {"field": "amount"}}, "any"),
    ({"not": {"all": [{"field": "1abc", "op": "=", "value": 1}]}}, "not.all[0].field"),
    ({"field": "amount", "op": "in", "value": 3}, "value"),
    ({"field": "amount", "op": "between", "value": [1]}, "value"),
    ({"field": "amount", "op": "=", "value": {"__class__": 1}}, "value"),
    ({"field": "amount", "op": "="}, "value"),
    ({"all": [], "any": []}, "any"),
    ({"field": "amount", "op": "=", "value": 1, "code": "import os"}, "code"),
    ([1, 2], "rule"),
]


@pytest.mark.parametrize("rule, path", BAD)
def test_invalid_rules_are_rejected_with_the_path_of_the_bad_part(rule, path):
    errors = rules.validate(rule)
    assert errors and errors[0][0] == path


@settings(max_examples=200, deadline=None)
@given(RULES, st.sampled_from(["op", "field", "value"]), st.sampled_from(["~", 7, None, "1x", {"a": 1}]))
def test_breaking_one_comparison_is_reported_at_its_path(rule, key, junk):
    # walk to the first comparison, break it, expect its path in the errors
    path, node = "", rule
    while "field" not in node:
        inner = next(k for k in ("all", "any", "not") if k in node)
        if inner == "not":
            path, node = f"{path}.not" if path else "not", node["not"]
        elif node[inner]:
            path, node = (f"{path}.{inner}" if path else inner) + "[0]", node[inner][0]
        else:
            return
    if key == "value" and node["op"] not in ("in", "not_in", "between") and not isinstance(junk, dict):
        return  # any scalar is a valid value for a plain comparison
    node[key] = junk
    where = f"{path}.{key}" if path else key
    assert any(p.startswith(where) for p, _ in rules.validate(rule))


def test_amounts_compare_as_decimals_not_floats():
    snapshot = {"form": {"amount": "0.30"}}
    assert rules.evaluate({"field": "amount", "op": "=", "value": 0.3}, snapshot)
    assert rules.evaluate({"field": "amount", "op": "=", "value": "0.3"}, {"form": {"amount": Decimal("0.30")}})
    assert not rules.evaluate({"field": "amount", "op": ">", "value": 0.1}, {"form": {"amount": "0.1000"}})
    assert rules.evaluate({"field": "amount", "op": ">", "value": 5000}, {"form": {"amount": "5000.01"}})
    assert rules.evaluate({"field": "amount", "op": "<", "value": "10000"}, {"form": {"amount": "8000.00"}})
    assert not rules.evaluate({"field": "amount", "op": ">", "value": 5000}, {"form": {"amount": "5000.00"}})
    assert rules.evaluate({"field": "amount", "op": "between", "value": [100, "200.5"]}, {"form": {"amount": "200.50"}})


def test_examples_over_the_snapshot():
    snap = {"form": {"amount": "12000", "city": "上海"}, "initiator": {"department_id": 3, "roles": ["sales_rep"]},
            "department": {"code": "sales-east"}}
    assert rules.evaluate({"all": [{"field": "amount", "op": ">=", "value": 10000},
                                   {"field": "department.code", "op": "in", "value": ["sales-east", "sales-south"]},
                                   {"field": "initiator.roles", "op": "contains", "value": "sales_rep"},
                                   {"not": {"field": "city", "op": "=", "value": "北京"}}]}, snap)
    assert not rules.evaluate({"field": "form.nothing", "op": ">", "value": 0}, snap)
    assert rules.evaluate({"field": "form.nothing", "op": "=", "value": None}, snap)
    # only dict keys are looked up: no attribute of a value is ever reachable
    assert rules.evaluate({"field": "amount.__class__", "op": "=", "value": None}, snap)
