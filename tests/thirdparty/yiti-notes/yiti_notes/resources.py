"""The note as a Resource: the core builds its API, permissions and audit trail from this."""
from flask_babel import lazy_gettext as _l
from marshmallow import Schema, fields

from core.resources import Resource
from core.schemas import length
from yiti_notes.models import Note


class NoteSchema(Schema):
    id = fields.Integer(dump_only=True)
    title = fields.String(required=True, validate=length(200, 1), metadata={"label": _l("Title")})
    body = fields.String(load_default="", validate=length(20000), metadata={"label": _l("Content")})
    owner_id = fields.Integer(allow_none=True)
    department_id = fields.Integer(dump_only=True, allow_none=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


NOTE = Resource(
    plugin="notes",
    name="note",
    model=Note,
    schema=NoteSchema,
    plural="notes",
    label=_l("Note"),
    label_plural=_l("Team notes"),
    title_field="title",
    list_columns=("title", "owner_id", "updated_at"),
    filters=("title", "owner_id", "department_id", "updated_at"),
    search_fields=("title", "body"),
    natural_key="title",
    example={"title": "周例会纪要", "body": "本周重点：华东区回款。"},
)
