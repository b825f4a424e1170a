"""Condition rules: a JSON tree evaluated by a small whitelisted interpreter.

A rule is one of::

    {"all": [rule, ...]}          true when every rule is (``all([])`` is true)
    {"any": [rule, ...]}          true when one rule is (``any([])`` is false)
    {"not": rule}
    {"field": "amount", "op": ">", "value": 5000}

``op`` is one of ``= != > >= < <= in not_in between contains``. ``field`` is a dotted path into
the request's snapshot (``form.amount``, ``initiator.department_id``, ``department.code``); a
path whose first part is not a key of the snapshot is read from the form (``amount`` is
``form.amount``). Numbers, and numeric text (money is kept as ``"8000.00"``) compared with a
number or numeric text, are compared as ``Decimal``, so money never goes through float and
``"8000.00" < "10000"``. A missing field is ``None``: it equals only ``None`` and is
neither greater nor smaller than anything.

There is no ``eval``, no attribute access and no database read: the interpreter only looks up
dict keys and compares values. ``validate`` is called when a flow is saved and returns errors
naming the bad part (``all[1].op``).
"""
from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

OPS = ("=", "!=", ">", ">=", "<", "<=", "in", "not_in", "between", "contains")
MAX_DEPTH = 32
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$")
_SCALARS = (str, int, float, bool, type(None))

__all__ = ["OPS", "validate", "evaluate", "RuleError"]


class RuleError(ValueError):
    """An invalid rule reached ``evaluate`` (``validate`` would have said why)."""


def validate(rule, path: str = "") -> list[tuple[str, str]]:
    """Every problem of ``rule`` as ``(path, message)``; an empty list means valid."""
    errors: list[tuple[str, str]] = []
    _check(rule, path, 0, errors)
    return errors


def _join(path: str, part: str) -> str:
    if part.startswith("["):
        return f"{path}{part}"
    return f"{path}.{part}" if path else part


def _check_value(value, path, errors) -> None:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        errors.append((path, "must be a finite number"))
    elif not isinstance(value, _SCALARS):
        errors.append((path, "must be text, a number, true/false or null"))


def _check(rule, path: str, depth: int, errors: list) -> None:
    if depth > MAX_DEPTH:
        errors.append((path or "rule", f"is nested deeper than {MAX_DEPTH} levels"))
        return
    if not isinstance(rule, dict):
        errors.append((path or "rule", "must be an object"))
        return
    combinators = [key for key in ("all", "any", "not") if key in rule]
    if combinators:
        key = combinators[0]
        if len(rule) != 1:
            extra = sorted(k for k in rule if k != key)
            errors.append((_join(path, extra[0]), f"is not allowed beside {key!r}"))
            return
        if key == "not":
            _check(rule["not"], _join(path, "not"), depth + 1, errors)
            return
        items = rule[key]
        if not isinstance(items, list):
            errors.append((_join(path, key), "must be a list of rules"))
            return
        for index, item in enumerate(items):
            _check(item, _join(_join(path, key), f"[{index}]"), depth + 1, errors)
        return
    for key in sorted(rule):
        if key not in ("field", "op", "value"):
            errors.append((_join(path, key), "is not a rule key (all, any, not, field, op, value)"))
            return
    field, op = rule.get("field"), rule.get("op")
    if not isinstance(field, str) or not _FIELD.match(field):
        errors.append((_join(path, "field"), "must be a dotted field name such as form.amount"))
    if op not in OPS:
        errors.append((_join(path, "op"), f"must be one of {' '.join(OPS)}"))
        return
    if "value" not in rule:
        errors.append((_join(path, "value"), "is missing"))
        return
    value, where = rule["value"], _join(path, "value")
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            errors.append((where, f"must be a list for {op!r}"))
            return
        for index, item in enumerate(value):
            _check_value(item, _join(where, f"[{index}]"), errors)
    elif op == "between":
        if not isinstance(value, list) or len(value) != 2:
            errors.append((where, "must be a list [low, high] for 'between'"))
            return
        for index, item in enumerate(value):
            _check_value(item, _join(where, f"[{index}]"), errors)
    else:
        _check_value(value, where, errors)


# Evaluation ---------------------------------------------------------------------------------------


def evaluate(rule, snapshot: dict) -> bool:
    """Whether ``snapshot`` satisfies ``rule``. Raises ``RuleError`` for an invalid rule."""
    return _eval(rule, snapshot, 0)


def _eval(rule, snapshot, depth) -> bool:
    if depth > MAX_DEPTH or not isinstance(rule, dict):
        raise RuleError("invalid rule")
    if "all" in rule:
        return all(_eval(item, snapshot, depth + 1) for item in _items(rule["all"]))
    if "any" in rule:
        return any(_eval(item, snapshot, depth + 1) for item in _items(rule["any"]))
    if "not" in rule:
        return not _eval(rule["not"], snapshot, depth + 1)
    op = rule.get("op")
    if op not in OPS or not isinstance(rule.get("field"), str) or "value" not in rule:
        raise RuleError("invalid comparison")
    return _compare(lookup(snapshot, rule["field"]), op, rule["value"])


def _items(items) -> list:
    if not isinstance(items, list):
        raise RuleError("all/any needs a list")
    return items


def lookup(snapshot: dict, field: str):
    """The value at dotted ``field`` (dict keys only); unknown first parts are read from ``form``."""
    parts = field.split(".")
    current = snapshot if parts[0] in snapshot else snapshot.get("form", {})
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        else:
            return None
    return current


def _number(value) -> Decimal | None:
    """``value`` as a finite Decimal when it is a number or numeric text, else ``None``."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, Decimal)):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _pair(left, right):
    """Make ``left`` and ``right`` comparable: both Decimal when either is a number, else as given."""
    if _is_number(left) or _is_number(right):
        a, b = _number(left), _number(right)
        return (a, b) if a is not None and b is not None else None
    if isinstance(left, str) and isinstance(right, str):
        a, b = _number(left), _number(right)
        return (a, b) if a is not None and b is not None else (left, right)
    return None


def _equal(left, right) -> bool:
    pair = _pair(left, right)
    if pair is not None:
        return pair[0] == pair[1]
    if isinstance(left, bool) or isinstance(right, bool):
        return left is right
    return left == right


def _order(left, right, test) -> bool:
    pair = _pair(left, right)
    if pair is None or isinstance(left, bool) or isinstance(right, bool):
        return False
    return test(pair[0], pair[1])


def _compare(left, op, value) -> bool:
    if op == "=":
        return _equal(left, value)
    if op == "!=":
        return not _equal(left, value)
    if op == ">":
        return _order(left, value, lambda a, b: a > b)
    if op == ">=":
        return _order(left, value, lambda a, b: a >= b)
    if op == "<":
        return _order(left, value, lambda a, b: a < b)
    if op == "<=":
        return _order(left, value, lambda a, b: a <= b)
    if op in ("in", "not_in"):
        if not isinstance(value, list):
            raise RuleError("in/not_in needs a list")
        found = any(_equal(left, item) for item in value)
        return found if op == "in" else not found
    if op == "between":
        if not isinstance(value, list) or len(value) != 2:
            raise RuleError("between needs [low, high]")
        return _order(left, value[0], lambda a, b: a >= b) and _order(left, value[1], lambda a, b: a <= b)
    # contains: a list holding the value, or text holding the text
    if isinstance(left, list):
        return any(_equal(item, value) for item in left)
    if isinstance(left, str) and isinstance(value, str):
        return value in left
    return False
