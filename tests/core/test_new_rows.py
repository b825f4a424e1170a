"""``records.new_rows``: the column values a bulk import writes without ORM objects are the ones a
record made by ``new_record`` and flushed holds (every registered resource), and a model whose row
the database completes itself is left to the records path."""
from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, inspect as sa_inspect, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core import resources as records
from core.extensions import db
from tests.core.test_record_permissions import every_resource, user

#: Set by the database or the clock at the moment of writing: equal in kind, not in value.
MOMENTS = {"id", "created_at", "updated_at"}


def _columns(model, obj) -> dict:
    return {prop.key: getattr(obj, prop.key) for prop in sa_inspect(model).column_attrs}


def test_new_rows_hold_what_a_flushed_record_holds_for_every_resource(company):
    checked = 0
    for resource in every_resource(company):
        with company.app_context():
            admin, owner = user("admin"), user("sales2")
            clean = records.load_new(resource, admin, resource.sample(0))
            given = records.load_new(resource, admin, {**resource.sample(1), "owner_id": owner.id}) \
                if "owner_id" in resource.schema._declared_fields else None
            rows = records.new_rows(resource, admin, [clean] + ([given] if given else []))
            if rows is None:
                continue
            checked += 1
            for made, row in zip([clean] + ([given] if given else []), rows):
                obj = records.new_record(resource, admin, dict(made))
                db.session.add(obj)
                db.session.flush()
                db.session.refresh(obj)
                stored = _columns(resource.model, obj)
                assert set(row) == set(stored), resource.key
                assert {k: v for k, v in row.items() if k not in MOMENTS} == \
                       {k: v for k, v in stored.items() if k not in MOMENTS}, resource.key
                assert all(row[k] is not None for k in ("created_at", "updated_at") if k in row), resource.key
            if given:
                assert rows[1]["owner_id"] == owner.id and rows[1]["department_id"] == owner.department_id
            db.session.rollback()
    assert checked >= 3  # notes and the CRM's plain objects at least


def test_a_model_the_database_completes_gets_no_rows(company):
    with company.app_context():
        metadata = MetaData()
        table = Table("t_server_default", metadata, Column("id", Integer, primary_key=True),
                      Column("name", String(20), server_default=text("'x'")))
        from sqlalchemy.orm import registry

        class Thing:
            pass

        registry(metadata=metadata).map_imperatively(Thing, table)
        resource = records.Resource(plugin="t", name="thing", model=Thing, schema=None, plural="things",
                                    label="Thing", label_plural="Things", bulk_insert=True)
        assert records.new_rows(resource, user("admin"), [{"name": "a"}]) is None


def test_bulk_insert_and_before_write_cannot_be_declared_together():
    import pytest

    with pytest.raises(ValueError, match="bulk_insert"):
        records.Resource(plugin="t", name="x", model=object, schema=None, plural="xs", label="X",
                         label_plural="Xs", bulk_insert=True, before_write=lambda *a: None)


def test_a_model_that_does_more_than_hold_its_columns_gets_no_rows(company):
    """A constructor of its own, an insert listener, a default that reads the statement, a value
    that is not a column: each is something only a record (the ORM path) does."""
    from sqlalchemy import event

    class Base(DeclarativeBase):
        pass

    class Plain(Base):
        __tablename__ = "t_plain_rows"
        id: Mapped[int] = mapped_column(primary_key=True)
        name: Mapped[str] = mapped_column(String(20), default="x")

    class OwnInit(Base):
        __tablename__ = "t_own_init"
        id: Mapped[int] = mapped_column(primary_key=True)

        def __init__(self, **kwargs):
            super().__init__(**kwargs)

    class Listened(Base):
        __tablename__ = "t_listened"
        id: Mapped[int] = mapped_column(primary_key=True)

    event.listen(Listened, "before_insert", lambda *args: None)

    class ReadsContext(Base):
        __tablename__ = "t_reads_context"
        id: Mapped[int] = mapped_column(primary_key=True)
        code: Mapped[str] = mapped_column(String(20), default=lambda context: context.get_current_parameters()["id"])

    def rows(model, clean):
        resource = records.Resource(plugin="t", name=model.__tablename__, model=model, schema=None, plural="ts",
                                    label="T", label_plural="Ts", bulk_insert=True)
        return records.new_rows(resource, user("admin"), [clean])

    with company.app_context():
        assert rows(Plain, {}) == [{"id": None, "name": "x"}]
        assert rows(Plain, {"nickname": "y"}) is None
        for model in (OwnInit, Listened, ReadsContext):
            assert rows(model, {}) is None, model.__name__
