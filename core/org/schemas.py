"""What may be written to and read from departments, users and roles."""
from __future__ import annotations

from zoneinfo import available_timezones

from flask_babel import lazy_gettext as _l
from marshmallow import fields, post_load, validate, validates, ValidationError as MMValidationError

from core.schemas import Schema, length

USERNAME = validate.Regexp(r"^[A-Za-z0-9_.\-]{2,64}$", error=_l("Use 2-64 letters, digits, '.', '_' or '-'."))
MOBILE = validate.Regexp(r"^\+?[0-9\- ]{5,20}$", error=_l("Enter a valid phone number."))
LANGUAGES = ("zh_CN", "en")
INT32 = 2**31 - 1  # ids and sort orders are INTEGER columns: larger numbers are refused, not sent to SQL
SORT_RANGE = validate.Range(min=-INT32, max=INT32, error=_l("Enter a number between {min} and {max}."))


class Text(fields.String):
    """A string without NUL characters, which PostgreSQL cannot store (SQLite would, and differ)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise self.make_error("invalid")
        return text


class Email(fields.Email):
    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if isinstance(value, str) and "\x00" in value:
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


class DepartmentIn(Schema):
    name = Text(required=True, validate=length(100, 1))
    code = Text(allow_none=True, validate=length(50))
    parent_id = fields.Integer(allow_none=True, strict=False)
    head_id = fields.Integer(allow_none=True, strict=False)
    sort = fields.Integer(load_default=0, strict=False, validate=SORT_RANGE)
    version = fields.Integer(strict=False)

    @post_load
    def _empty_code_is_none(self, data, **_kwargs):
        """An empty code means "no code": stored as NULL, so that any number of departments can lack one."""
        if data.get("code") == "":
            data["code"] = None
        return data


class DepartmentOut(Schema):
    id = fields.Integer()
    name = fields.String()
    code = fields.String(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    path = fields.String()
    head_id = fields.Integer(allow_none=True)
    sort = fields.Integer()
    version = fields.Integer()
    updated_at = fields.DateTime()


class ProfileIn(Schema):
    """What users may change about themselves (and admins too, see ``UserIn``)."""

    display_name = Text(required=True, validate=length(100, 1))
    email = Email(allow_none=True, validate=length(254))
    mobile = Text(allow_none=True, validate=MOBILE)
    language = Text(allow_none=True, validate=validate.OneOf(LANGUAGES, error=_l("Choose a listed language.")))
    timezone = Text(load_default="Asia/Shanghai")
    version = fields.Integer(strict=False)

    @validates("timezone")
    def _timezone(self, value, **_kwargs):
        if value not in _zones():
            # A list, as every other field error: a lazy string alone would be stored as the bare message.
            raise MMValidationError([_l("Choose a valid time zone, e.g. Asia/Shanghai.")])


class UserIn(ProfileIn):
    """Fields an admin may write on a user. ``password`` only on create (or a reset)."""

    username = Text(required=True, validate=USERNAME)
    department_id = fields.Integer(allow_none=True, strict=False)
    manager_id = fields.Integer(allow_none=True, strict=False)
    active = fields.Boolean(load_default=True)
    roles = fields.List(Text(), load_default=list)
    password = Text(load_only=True)


class PasswordChangeIn(Schema):
    current_password = fields.String(required=True)
    new_password = fields.String(required=True)
    confirm_password = fields.String(required=True)


class RoleOut(Schema):
    id = fields.Integer()
    key = fields.String()
    name = fields.String(attribute="label")
    description = fields.String()
    builtin = fields.Boolean()


class UserOut(Schema):
    id = fields.Integer()
    username = fields.String()
    display_name = fields.String()
    email = fields.String(allow_none=True)
    mobile = fields.String(allow_none=True)
    active = fields.Boolean()
    department_id = fields.Integer(allow_none=True)
    manager_id = fields.Integer(allow_none=True)
    language = fields.String(allow_none=True)
    timezone = fields.String()
    roles = fields.Function(lambda user: sorted(user.role_keys))
    last_login_at = fields.DateTime(allow_none=True)
    version = fields.Integer()
    updated_at = fields.DateTime()


_ZONES: set[str] = set()


def _zones() -> set[str]:
    if not _ZONES:
        _ZONES.update(available_timezones())
    return _ZONES
