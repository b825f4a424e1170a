"""Lists read as rows (``core.readers``) give exactly what ``schema.dump`` of the loaded records gives.

Checked for every registered resource of every plugin, as an administrator and as a user whose
role masks one field and hides another; and a schema the row reader cannot follow falls back.
"""
from __future__ import annotations

from datetime import datetime, timezone

from marshmallow import Schema, fields, post_dump

from core import resources as records
from core.extensions import db
from core.readers import row_reader
from tests.core.test_record_permissions import every_resource, only_role, seed, string_fields, user

#: Resources whose lists must take the row path: if they fell back, the speed would be gone silently.
FAST = ("notes.note", "crm.customer", "crm.contact", "crm.lead", "crm.opportunity")


def both_ways(resource, reader_user):
    query = records.scoped(resource, reader_user).order_by(resource.model.id)
    as_rows = records.dumped(resource, reader_user, query)
    objs = db.session.scalars(query).all()
    return as_rows, records.dump(resource, reader_user, objs, many=True)


def test_rows_dump_like_the_schema_for_every_resource_and_field_rule(company):
    for resource in every_resource(company):
        seed(company, resource)
        masked = string_fields(resource)[:2]
        rules = {masked[0]: "masked"} if masked else {}
        if len(masked) > 1:
            rules[masked[1]] = "hidden"
        only_role(company, resource, "all", field_rules=rules)
        with company.app_context():
            for name in ("admin", "sales1"):
                as_rows, as_objects = both_ways(resource, user(name))
                assert len(as_rows) >= 3, resource.key
                assert as_rows == as_objects, (resource.key, name)
                if name == "sales1" and masked:
                    assert all("*" in row[masked[0]] for row in as_rows if row[masked[0]]), resource.key
                    assert len(masked) < 2 or all(masked[1] not in row for row in as_rows), resource.key


def test_the_main_business_objects_take_the_row_path(company):
    with company.app_context():
        found = records.resources()
        for key in FAST:
            resource = found[key]
            assert row_reader(resource.schema, resource.model, frozenset()) is not None, key


def test_a_schema_the_reader_cannot_follow_falls_back_to_the_objects(company):
    from yiti_notes.models import Note

    class WithMethod(Schema):
        id = fields.Integer()
        shout = fields.Method("loud")

        def loud(self, obj):
            return obj.title.upper()

    class WithHook(Schema):
        id = fields.Integer()
        title = fields.String()

        @post_dump
        def tag(self, data, **kwargs):
            return {**data, "tagged": True}

    class Upper(fields.String):
        def _serialize(self, value, attr, obj, **kwargs):
            return None if value is None else value.upper()

    class WithOwnField(Schema):
        title = Upper()

    class WithProperty(Schema):
        label = fields.String()  # not a column of Note

    for schema in (WithMethod, WithHook, WithOwnField, WithProperty):
        assert row_reader(schema, Note, frozenset()) is None, schema.__name__

    class Plain(Schema):
        id = fields.Integer()
        heading = fields.String(attribute="title", data_key="headline")
        updated_at = fields.DateTime()

    reader = row_reader(Plain, Note, frozenset())
    at = datetime(2026, 3, 1, 8, 30, tzinfo=timezone.utc)
    expected = {"id": 7, "headline": "周报", "updated_at": "2026-03-01T08:30:00+00:00"}
    assert Plain().dump({"id": 7, "title": "周报", "updated_at": at}) == expected
    assert reader.dump([(7, "周报", at)]) == [expected]


def test_audit_snapshots_read_from_loaded_records_match_the_schema_for_every_resource(company):
    from core import audit

    for resource in every_resource(company):
        seed(company, resource)
        with company.app_context():
            objs = db.session.scalars(records.scoped(resource, user("admin")).order_by(resource.model.id)).all()
            assert len(objs) >= 3, resource.key
            expected = [audit.jsonable({k: v for k, v in dumped.items() if k not in records.SYSTEM_FIELDS})
                        for dumped in resource.schema().dump(objs, many=True)]
            assert records.snapshots(resource, objs) == expected, resource.key
            assert records.snapshot(resource, objs[0]) == expected[0], resource.key
