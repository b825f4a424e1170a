"""Comments with @mentions on any record: the discussion thread under the History tab.

- ``post(resource, record_id, user, body)``: needs ``read`` on the record; audited. Each
  ``@username`` or ``@姓名`` naming an active user who may read the record too (the same
  ``scope_filter``, as that user) puts a ``mention`` item in their inbox; anyone else named is
  skipped without a word, so a comment never tells who else could see the record.
- ``list_for(resource, record_id, user)``: the thread, oldest first; needs ``read``.
- ``render(body)``: the body as safe HTML (escaped, line breaks kept, mentions marked).

``resource`` is a ``Resource`` or its key. Everything is in the caller's transaction.
"""
from __future__ import annotations

import re

from flask import url_for
from flask_babel import gettext as _
from markupsafe import Markup, escape
from sqlalchemy import func, or_, select

from core import audit, clock, inbox
from core.comments.models import Comment
from core.errors import ValidationError
from core.extensions import db

__all__ = ["Comment", "post", "list_for", "mentioned_users", "render", "dump", "BODY_MAX"]

BODY_MAX = 5000
MENTIONS_MAX = 20
#: ``@`` at the start or after a non-word character (so ``a@b.com`` is no mention), then the name:
#: everything up to a space or punctuation. ``@张伟请看`` is resolved by the longest known prefix.
_NAME_CHAR = re.compile(r"[A-Za-z0-9_]")
MENTION = re.compile(r"(?<![\w.])@([^\s@,，。:：;；!！?？()（）<>\"'“”‘’、/\\\[\]【】]{1,64})")


def _resource(resource):
    from core import resources as records

    return records.get_resource(resource) if isinstance(resource, str) else resource


def _clean_body(body) -> str:
    if not isinstance(body, str):
        raise ValidationError(_("Please correct the highlighted fields."), fields={"body": [_("Not a valid string.")]})
    body = body.replace("\r\n", "\n").replace("\x00", "").strip()
    if not body:
        raise ValidationError(_("Please correct the highlighted fields."), fields={"body": [_("Write a comment first.")]})
    if len(body) > BODY_MAX:
        raise ValidationError(_("Please correct the highlighted fields."),
                              fields={"body": [_("Enter at most {max} characters.").format(max=BODY_MAX)]})
    return body


def mentioned_users(body: str) -> list:
    """Active users named by ``@username`` or ``@display name`` in ``body`` (one query).

    A token matches a user when the token, or its longest prefix that is a username (any case) or
    a display name, names them: ``@张伟请看`` mentions 张伟.
    """
    from core.org.models import User

    tokens = [m.group(1) for m in MENTION.finditer(body)][:MENTIONS_MAX]
    if not tokens:
        return []
    prefixes = {token[:n] for token in tokens for n in range(1, len(token) + 1)}
    lowered = {p.lower() for p in prefixes}
    candidates = db.session.scalars(select(User).where(
        User.active.is_(True), or_(func.lower(User.username).in_(lowered), User.display_name.in_(prefixes)))).all()
    by_name: dict[str, list] = {}
    for user in candidates:
        by_name.setdefault(user.username.lower(), []).append(user)
        by_name.setdefault(user.display_name, []).append(user)
    found = {}
    for token in tokens:
        for n in range(len(token), 0, -1):
            if n < len(token) and _NAME_CHAR.match(token[n]) and _NAME_CHAR.match(token[n - 1]):
                continue  # "@salesteam" does not mention "sales": a name ends where its letters do
            matches = by_name.get(token[:n]) or by_name.get(token[:n].lower())
            if matches:
                found.update((u.id, u) for u in matches)
                break
    return list(found.values())


def _may_read(resource, record_id: int, user) -> bool:
    from core.permissions import scope_filter, scope_of

    if scope_of(user, resource.permission("read")) is None:
        return False
    return db.session.scalar(select(resource.model.id).where(
        resource.model.id == record_id, scope_filter(resource, "read", user))) is not None


def post(resource, record_id, user, body) -> Comment:
    """Add ``user``'s comment to a record they may read, notify the readers it mentions; audited."""
    from core import resources as records

    resource = _resource(resource)
    obj = records.get(resource, user, record_id, action="read")
    text = _clean_body(body)
    comment = Comment(resource=resource.key, record_id=obj.id, author_id=user.id, body=text, created_at=clock.now())
    db.session.add(comment)
    db.session.flush()
    notified = []
    url = url_for("records.detail", plugin=resource.plugin, plural=resource.plural, record_id=obj.id,
                  tab="history", _anchor=f"comment-{comment.id}")
    for person in mentioned_users(text):
        if person.id == user.id or not _may_read(resource, obj.id, person):
            continue
        title = resource.title_of(records.dump(resource, person, obj))  # as *they* may see it (masks apply)
        inbox.upsert("core", f"comment:{comment.id}", person, "mention",
                     _("%(name)s mentioned you on %(title)s", name=user.display_name, title=title), url=url,
                     subject_type=resource.key, subject_id=obj.id)
        notified.append(person.username)
    audit.record("comment", resource=resource.key, record_id=obj.id, summary=text[:255],
                 changes={"comment_id": [None, comment.id], "mentioned": [None, sorted(notified)]}, actor=user)
    return comment


def list_for(resource, record_id, user, limit: int = 500) -> list[Comment]:
    """The comments on a record ``user`` may read, oldest first (``NotFound`` outside their scope)."""
    from core import resources as records

    resource = _resource(resource)
    obj = records.get(resource, user, record_id, action="read")
    return list(db.session.scalars(
        select(Comment).where(Comment.resource == resource.key, Comment.record_id == obj.id)
        .order_by(Comment.id).limit(limit)))


def authors(comments: list[Comment]) -> dict[int, str]:
    """``{user id: display name}`` for the authors of ``comments`` (one query)."""
    from core.org.services import display_names

    return display_names(c.author_id for c in comments)


def render(body: str) -> Markup:
    """``body`` as HTML: every character escaped, line breaks as ``<br>``, mentions highlighted."""
    parts, last = [], 0
    for match in MENTION.finditer(body):
        parts.append(escape(body[last:match.start()]))
        parts.append(Markup('<span class="mention">{}</span>').format(match.group(0)))
        last = match.end()
    parts.append(escape(body[last:]))
    return Markup("").join(parts).replace("\n", Markup("<br>"))


def dump(comment: Comment, names: dict | None = None) -> dict:
    """A comment as the API shows it (``body`` is plain text: clients escape it)."""
    return {"id": comment.id, "author_id": comment.author_id,
            "author": (names or {}).get(comment.author_id), "body": comment.body,
            "created_at": comment.created_at.isoformat()}
