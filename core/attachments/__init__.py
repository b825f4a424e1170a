"""Attachments: files on any record, checked by content, stored by hash, read through the record's scope.

Every ``Resource`` gets them (API ``/api/v1/<plugin>/<plural>/<id>/attachments``, an "附件"
section on the detail page); plugins use the same functions for their own objects:

- ``save(resource, record_id, file, user)``: upload; needs ``update`` on the record.
- ``list_for(resource, record_id, user)``: the record's attachments; needs ``read``.
- ``open_for_download(resource, record_id, attachment_id, user)``: the row and its bytes; needs
  ``read``; audited.
- ``remove(resource, record_id, attachment_id, user)``: needs ``update``; audited.

``resource`` is a ``Resource`` or its key (``"crm.customer"``). Access is decided by
``core.resources.get`` (the record re-selected through ``scope_filter``), so a record outside the
user's scope, or an attachment of another record, is a ``NotFound`` like a missing one.
``store(owner, record_id, file, user)``, ``rows(owner, record_id)`` and ``open_stored(owner,
record_id, attachment_id, user)`` skip that check, for plugins whose objects are not Resources and
which check access themselves first (the approval plugin's comments, form fields): ``owner`` is
then any ``<plugin>.<thing>`` name of theirs. ``check(file)`` validates an upload without storing
it, so a form can report every bad field before anything is written.

A file is accepted when it is not empty, not larger than ``ATTACHMENTS_MAX_MB``, its bytes are
one of the kinds in ``ATTACHMENTS_TYPES`` (see ``core.attachments.sniff``) and its name's extension
agrees with them; otherwise a ``ValidationError`` on the field ``file``. Everything is in the
caller's transaction; the bytes are stored before the row (a rolled-back row leaves at most an
unreferenced file, never a row without a file).
"""
from __future__ import annotations

import hashlib
import logging
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from flask import current_app
from flask_babel import gettext as _
from sqlalchemy import select

from core import audit, clock
from core.attachments.models import Attachment
from core.attachments.sniff import KINDS, sniff
from core.attachments.storage import MissingFile, storage
from core.errors import NotFound, ValidationError
from core.extensions import db

__all__ = ["Attachment", "save", "store", "check", "list_for", "rows", "get_for", "open_for_download", "open_stored",
           "remove", "dump", "Download", "storage"]

CHUNK = 1 << 16
FILENAME_MAX = 255
log = logging.getLogger(__name__)


def _resource(resource):
    from core import resources as records

    return records.get_resource(resource) if isinstance(resource, str) else resource


def _record(resource, user, record_id, action: str):
    """The owning record, re-selected through ``user``'s scope for ``action`` (else NotFound/Forbidden)."""
    from core import resources as records

    return records.get(resource, user, record_id, action=action)


def _invalid(message: str) -> ValidationError:
    return ValidationError(_("Please correct the highlighted fields."), fields={"file": [message]})


def clean_filename(name: str | None) -> str:
    """The name to show: the last path part, no control characters, at most 255 characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = re.split(r"[\\/]", name)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip().strip(".")
    if len(name) > FILENAME_MAX:
        stem, dot, extension = name.rpartition(".")
        keep = FILENAME_MAX - len(extension) - 1
        name = f"{stem[:keep]}.{extension}" if dot and 0 < len(extension) < 16 else name[:FILENAME_MAX]
    return name


def max_mb() -> int:
    """The largest file accepted, in MB (``ATTACHMENTS_MAX_MB``)."""
    return current_app.config["YITI"]["ATTACHMENTS_MAX_MB"]


def _allowed() -> set[str]:
    return {e.lower().lstrip(".") for e in current_app.config["YITI"]["ATTACHMENTS_TYPES"]}


@dataclass
class _Checked:
    handle: BinaryIO
    sha256: str
    size: int
    content_type: str
    filename: str


def _check(file_storage, spool: BinaryIO) -> _Checked:
    """Copy the upload into ``spool`` (hashing and counting), then check name, size and content."""
    if file_storage is None or not getattr(file_storage, "filename", None):
        raise _invalid(_("Choose a file to upload."))
    filename = clean_filename(file_storage.filename)
    extension = filename.rpartition(".")[2].lower() if "." in filename else ""
    if not filename or not extension:
        raise _invalid(_("The file name needs an extension such as .pdf or .xlsx."))
    limit_mb = max_mb()
    limit = limit_mb * 1024 * 1024
    digest, size = hashlib.sha256(), 0
    stream = file_storage.stream
    for block in iter(lambda: stream.read(CHUNK), b""):
        size += len(block)
        if size > limit:
            raise _invalid(_("The file is larger than %(limit)s MB.", limit=limit_mb))
        digest.update(block)
        spool.write(block)
    if size == 0:
        raise _invalid(_("The file is empty."))
    allowed = _allowed()
    kind = sniff(spool, extension)
    if kind is None or kind.dangerous or kind.name not in allowed:
        raise _invalid(_("This type of file is not accepted. Accepted: %(types)s.",
                         types=", ".join(sorted(allowed))))
    if extension not in kind.extensions:
        raise _invalid(_("The file's content (%(kind)s) does not match its name (.%(extension)s).",
                         kind=kind.name.upper(), extension=extension))
    spool.seek(0)
    return _Checked(spool, digest.hexdigest(), size, kind.content_type, filename)


def check(file_storage) -> None:
    """Raise the ``ValidationError`` that ``store`` would raise for ``file_storage``, storing nothing;
    the upload's stream is rewound, ready for ``store``."""
    stream = getattr(file_storage, "stream", None)
    start = stream.tell() if stream is not None and stream.seekable() else None
    try:
        with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
            _check(file_storage, spool)
    finally:
        if start is not None:
            stream.seek(start)


def store(owner: str, record_id: int, file_storage, user) -> Attachment:
    """Check and store ``file_storage`` for ``(owner, record_id)`` *without* an access check; audited.

    For callers that have checked access themselves (see the module docstring). ``file_storage``
    is a werkzeug ``FileStorage`` (or anything with ``filename`` and a readable ``stream``).
    """
    with tempfile.SpooledTemporaryFile(max_size=1 << 20) as spool:
        checked = _check(file_storage, spool)
        storage().put(checked.sha256, checked.handle, checked.content_type)
    attachment = Attachment(resource=owner, record_id=int(record_id), sha256=checked.sha256, size=checked.size,
                            content_type=checked.content_type, filename=checked.filename,
                            uploaded_by_id=getattr(user, "id", None), created_at=clock.now())
    db.session.add(attachment)
    db.session.flush()
    audit.record("attach", resource=owner, record_id=int(record_id), summary=checked.filename,
                 changes={"attachment": [None, checked.filename], "attachment_id": [None, attachment.id],
                          "size": [None, checked.size], "sha256": [None, checked.sha256]}, actor=user)
    return attachment


def save(resource, record_id, file_storage, user) -> Attachment:
    """Attach an uploaded file to a record ``user`` may update; returns the new ``Attachment``."""
    resource = _resource(resource)
    obj = _record(resource, user, record_id, "update")
    return store(resource.key, obj.id, file_storage, user)


def rows(owner: str, record_id: int) -> list[Attachment]:
    """The attachments of ``(owner, record_id)``, oldest first, *without* an access check."""
    return list(db.session.scalars(
        select(Attachment).where(Attachment.resource == owner, Attachment.record_id == int(record_id),
                                 Attachment.deleted_at.is_(None)).order_by(Attachment.id)))


def list_for(resource, record_id, user) -> list[Attachment]:
    """The attachments of a record ``user`` may read (``NotFound`` outside their scope)."""
    resource = _resource(resource)
    obj = _record(resource, user, record_id, "read")
    return rows(resource.key, obj.id)


def _one(owner: str, record_id: int, attachment_id) -> Attachment:
    try:
        attachment_id = int(attachment_id)
    except (TypeError, ValueError):
        raise NotFound(_("Not found.")) from None
    attachment = None
    if 0 < attachment_id < 2**31:
        attachment = db.session.scalar(select(Attachment).where(
            Attachment.id == attachment_id, Attachment.resource == owner, Attachment.record_id == record_id,
            Attachment.deleted_at.is_(None)))
    if attachment is None:
        raise NotFound(_("Not found."))
    return attachment


def get_for(resource, record_id, attachment_id, user, action: str = "read") -> Attachment:
    """One attachment of a record ``user`` may ``action``; ``NotFound`` for any other id."""
    resource = _resource(resource)
    obj = _record(resource, user, record_id, action)
    return _one(resource.key, obj.id, attachment_id)


@dataclass
class Download:
    """What a download response needs: the row (name, type, size) and the open stored file."""

    attachment: Attachment
    handle: BinaryIO

    def chunks(self) -> Iterator[bytes]:
        """The bytes in blocks; the file is closed at the end (or when the response is closed)."""
        try:
            yield from iter(lambda: self.handle.read(CHUNK), b"")
        finally:
            self.handle.close()


def open_for_download(resource, record_id, attachment_id, user) -> Download:
    """An attachment of a record ``user`` may read, with its bytes; the download is audited.

    The caller commits (the audit entry) and sends it as ``Content-Disposition: attachment``.
    """
    resource = _resource(resource)
    obj = _record(resource, user, record_id, "read")
    return open_stored(resource.key, obj.id, attachment_id, user)


def open_stored(owner: str, record_id: int, attachment_id, user) -> Download:
    """``open_for_download`` for ``(owner, record_id)`` *without* an access check (the caller has
    checked it); ``NotFound`` for an attachment of any other record. Audited."""
    attachment = _one(owner, int(record_id), attachment_id)
    try:
        handle = storage().open(attachment.sha256)
    except MissingFile:
        log.error("attachment %s: stored file %s is missing", attachment.id, attachment.sha256)
        raise NotFound(_("The file is missing from the storage. Ask an administrator to restore it.")) from None
    audit.record("download", resource="core.attachment", record_id=attachment.id,
                 summary=f"{attachment.filename} ({attachment.resource} #{attachment.record_id})", actor=user)
    return Download(attachment, handle)


def remove(resource, record_id, attachment_id, user) -> Attachment:
    """Take an attachment off a record ``user`` may update; audited. The row stays (``deleted_at``),
    and so do the bytes, which other attachments with the same content may share."""
    attachment = get_for(resource, record_id, attachment_id, user, action="update")
    attachment.deleted_at = clock.now()
    attachment.deleted_by_id = user.id
    audit.record("detach", resource=attachment.resource, record_id=attachment.record_id, summary=attachment.filename,
                 changes={"attachment": [attachment.filename, None], "attachment_id": [attachment.id, None]},
                 actor=user)
    db.session.flush()
    return attachment


def dump(attachment: Attachment) -> dict:
    """An attachment as the API shows it."""
    return {"id": attachment.id, "filename": attachment.filename, "size": attachment.size,
            "content_type": attachment.content_type, "sha256": attachment.sha256,
            "uploaded_by_id": attachment.uploaded_by_id, "created_at": attachment.created_at.isoformat()}


def kinds() -> list:
    """The accepted kinds, for an upload form's hint and its ``accept`` attribute."""
    allowed = _allowed()
    return [k for k in KINDS.values() if k.name in allowed and not k.dangerous]


def accept_attribute() -> str:
    return ",".join(f".{e}" for k in kinds() for e in k.extensions)


def human_size(size: int) -> str:
    """``532 B``, ``12.3 KB``, ``4.0 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB"):
        if value < 1024 or unit == "MB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} MB"


