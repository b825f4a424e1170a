"""Input validation with marshmallow, and field messages in the user's language.

Services validate with ``load(schema, data)``: it returns clean data or raises our
``ValidationError`` whose ``fields`` map each field to translated messages. Unknown fields are
rejected (``RAISE``), so a client can never write a field the schema does not whitelist.
"""
from __future__ import annotations

import json
import re

import marshmallow
from babel.lists import format_list
from flask import current_app, has_app_context
from flask_babel import force_locale, get_locale, gettext, lazy_gettext as _l

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


_LIST_SEPARATORS = re.compile(r"[,，、;；\n]")


def list_from_text(text: str):
    """A list as a person types it in a form or a spreadsheet cell: ``重点, VIP`` (commas, 、 or
    semicolons) or ``["重点", "VIP"]`` (JSON, as exports write it). Text that starts like JSON but
    is not is returned as it is, for the schema to refuse."""
    text = text.strip()
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return [part.strip() for part in _LIST_SEPARATORS.split(text) if part.strip()]


def choices(field: marshmallow.fields.Field) -> list[tuple]:
    """``[(code, label)]`` a field takes: its ``OneOf`` validator's (labels, else the codes), or
    ``metadata["choices"]()`` for choices an administrator sets (a plugin's setting); ``[]``: free input."""
    provider = field.metadata.get("choices")
    if callable(provider):
        return [(code, str(label)) for code, label in provider()]
    for validator in field.validators:
        if isinstance(validator, marshmallow.validate.OneOf):
            labels = validator.labels if validator.labels else validator.choices
            return [(code, str(label)) for code, label in zip(validator.choices, labels)]
    return []


class OneOf(marshmallow.validate.OneOf):
    """marshmallow's ``OneOf`` for choices with labels: its message names them by their labels in
    the reader's language (read when the message is made), with the codes an API client sends."""

    def __init__(self, choices, labels):
        super().__init__(choices, labels=labels, error=_l("Must be one of: {labels} (codes: {choices})."))

    def _format_error(self, value) -> str:
        labels = [str(label) for label in self.labels]
        if ", ".join(labels) == self.choices_text:  # labelled as they are stored (levels A, B, C)
            return gettext("Must be one of: %(choices)s.", choices=self.choices_text)
        listed = format_list(labels, style="or", locale=get_locale() or "en")  # 正常、休眠或已流失
        return str(self.error).format(input=value, choices=self.choices_text, labels=listed)


def _choices_in_every_language(field: marshmallow.fields.Field) -> list[tuple]:
    """``choices(field)`` in the current language, then in each of the app's other languages."""
    found = choices(field)
    if not found or not has_app_context():
        return found
    for locale in current_app.config["YITI"]["LANGUAGES"]:
        with force_locale(locale):
            found += choices(field)
    return found


def choice_from_text(field: marshmallow.fields.Field, text: str) -> str:
    """The stored code of a choice typed as its label (``正常`` for ``active``) or as its code in
    another case (``a`` for ``A``); any other text as it is, for the schema to refuse."""
    return choice_reader(field)(text)


def choice_reader(field: marshmallow.fields.Field):
    """``choice_from_text`` for ``field`` with its choices read once: ``read(text) -> code or text``
    (an import reads a column's many cells with one). A label is read in any of the app's
    languages (``LANGUAGES``), as an import's headers are: an English page takes a file typed in
    Chinese; where two languages' labels clash, the current language's wins."""
    codes = {}
    for code, label in _choices_in_every_language(field):
        codes.setdefault(label.strip().lower(), code)
        codes.setdefault(str(code).lower(), code)
    if not codes:
        return lambda text: text
    return lambda text: codes.get(text.strip().lower(), text)
