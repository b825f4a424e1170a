"""Field rules: hidden, masked and read-only fields, applied by one schema factory per (resource, user).

A user with several roles gets, for each field, the least restrictive rule among the roles that
may read the resource (a role that reads it without a rule for the field shows it in full).
Hidden fields never leave the server; masked ones leave only masked (``138****5678``,
``z***@example.com``); read-only and masked ones sent in a write are a field error.
"""
from __future__ import annotations

import re
from functools import lru_cache

from flask_babel import gettext as _

from core.permissions import grant_rows, field_rule_rows
from core.permissions.models import FIELD_RULES

_RESTRICTION = {rule: rank for rank, rule in enumerate(FIELD_RULES)}
_EMAIL = re.compile(r"^([^@]+)@(.+)$")
_DIGITS = re.compile(r"\d")


def field_rules(resource, user) -> dict[str, str]:
    """``{field: rule}`` for ``resource`` (a ``Resource`` or its key) as ``user`` sees it."""
    key = resource if isinstance(resource, str) else resource.key
    if user is None or not getattr(user, "is_authenticated", False):
        return {}
    if user.is_admin:
        return {}
    readers = {role_id for role_id, permission, _scope in grant_rows(user) if permission == f"{key}.read"}
    by_field: dict[str, dict[int, str]] = {}
    for role_id, field, rule in field_rule_rows(key, user):
        by_field.setdefault(field, {})[role_id] = rule
    rules = {}
    for field, per_role in by_field.items():
        relevant = readers or set(per_role)  # without a reading role nothing is shown anyway
        if any(role not in per_role for role in relevant):
            continue  # some role that reads the resource shows this field in full
        rules[field] = min((per_role[role] for role in relevant), key=_RESTRICTION.__getitem__)
    return rules


def mask_value(value):
    """A value with most of it hidden: phones keep 3 + 4 digits, e-mails the first letter and domain."""
    if value is None or value == "":
        return value
    text = str(value)
    match = _EMAIL.match(text)
    if match:
        return f"{match.group(1)[0]}***@{match.group(2)}"
    digits = _DIGITS.findall(text)
    if len(digits) >= 7 and len(digits) >= len(text) - 4:
        plain = "".join(digits)
        return f"{plain[:3]}****{plain[-4:]}"
    if len(text) <= 2:
        return "*" * len(text)
    return f"{text[0]}***{text[-1]}" if len(text) > 4 else f"{text[0]}***"


def apply_rules(row: dict, rules: dict[str, str]) -> dict:
    """A dumped record with hidden fields removed and masked fields masked."""
    if not rules:
        return row
    shown = {}
    for key, value in row.items():
        rule = rules.get(key)
        if rule == "hidden":
            continue
        shown[key] = mask_value(value) if rule == "masked" else value
    return shown


def mask_changes(resource_key: str, viewer, changes: dict) -> dict:
    """An audit entry's ``{field: [old, new]}`` as ``viewer`` may see it."""
    rules = field_rules(resource_key, viewer)
    shown = {}
    for field, pair in (changes or {}).items():
        rule = rules.get(field)
        if rule == "hidden":
            continue
        shown[field] = [mask_value(v) for v in pair] if rule == "masked" else pair
    return shown


def check_writable(data: dict, rules: dict[str, str]) -> dict:
    """Field errors for fields ``data`` may not write: read-only and masked ones (hidden ones are unknown)."""
    errors = {}
    for field in data:
        rule = rules.get(field)
        if rule in ("readonly", "masked"):
            errors[field] = [_("This field is read-only for you.")]
        elif rule == "hidden":
            errors[field] = [_("Unknown field.")]
    return errors


@lru_cache(maxsize=512)
def read_schema(schema_class, hidden: frozenset):
    """One dump schema per (schema, hidden fields): built once, reused for every request."""
    return schema_class(exclude=tuple(sorted(hidden & set(schema_class._declared_fields))))
