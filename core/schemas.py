"""Input validation with marshmallow, and field messages in the user's language.

Services validate with ``load(schema, data)``: it returns clean data or raises our
``ValidationError`` whose ``fields`` map each field to translated messages. Unknown fields are
rejected (``RAISE``), so a client can never write a field the schema does not whitelist.
"""
from __future__ import annotations

import marshmallow
from flask_babel import gettext, lazy_gettext as _l

from core.errors import ValidationError

# marshmallow's own messages, marked for translation so the zh_CN catalogue covers them.
BUILTIN_MESSAGES = (
    _l("Missing data for required field."),
    _l("Field may not be null."),
    _l("Unknown field."),
    _l("Not a valid email address."),
    _l("Not a valid integer."),
    _l("Not a valid boolean."),
    _l("Not a valid string."),
    _l("Not a valid list."),
    _l("Invalid input type."),
    _l("Invalid value."),
    _l("Not a valid datetime."),
    _l("Not a valid date."),
    _l("Not a valid number."),
)


class Schema(marshmallow.Schema):
    """Base schema: unknown fields are an error, never silently dropped or written."""

    class Meta:
        unknown = marshmallow.RAISE


def _translate(messages):
    if isinstance(messages, dict):
        return {key: _translate(value) for key, value in messages.items()}
    if isinstance(messages, list):
        return [_translate(message) for message in messages]
    return gettext(str(messages))


def load(schema: marshmallow.Schema, data, *, partial: bool = False) -> dict:
    """Validate ``data`` against ``schema``; raise ``ValidationError`` with per-field messages."""
    try:
        return schema.load(data or {}, partial=partial)
    except marshmallow.ValidationError as exc:
        messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationError(gettext("Please correct the highlighted fields."), fields=_translate(messages)) from None


def length(maximum: int, minimum: int = 0):
    """A translated length validator."""
    if minimum:
        return marshmallow.validate.Length(
            min=minimum, max=maximum, error=_l("Enter between {min} and {max} characters.")
        )
    return marshmallow.validate.Length(max=maximum, error=_l("Enter at most {max} characters."))
