"""Helpers for HTML forms: turn a submitted form into the dict a service's schema expects."""
from __future__ import annotations

from werkzeug.datastructures import MultiDict


def form_data(form: MultiDict, fields: tuple[str, ...], lists: tuple[str, ...] = (), booleans: tuple[str, ...] = ()) -> dict:
    """Pick ``fields`` from ``form``: empty text becomes ``None``, ``lists`` are multi-valued,
    ``booleans`` are checkboxes (absent means false). Everything else in the form is ignored."""
    data: dict = {}
    for name in fields:
        if name in booleans:
            data[name] = name in form
        elif name in lists:
            data[name] = form.getlist(name)
        elif name in form:
            value = form.get(name, "").strip()
            data[name] = value or None
    return {k: v for k, v in data.items() if not (k == "version" and v is None)}

