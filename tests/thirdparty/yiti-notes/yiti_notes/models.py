from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.extensions import db
from core.models import CreatedByMixin, CustomFieldsMixin, OwnedMixin, VersionedMixin


class Note(OwnedMixin, CreatedByMixin, VersionedMixin, CustomFieldsMixin, db.Model):
    __tablename__ = "notes_note"
    __table_args__ = OwnedMixin.scope_indexes("notes_note")

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False, default="")
