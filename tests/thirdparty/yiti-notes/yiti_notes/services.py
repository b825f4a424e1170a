"""Notes' business rules: creating a note asks the owner's manager to review it."""
from datetime import timedelta

from flask import url_for

from core import clock, events, inbox
from core.extensions import db
from yiti_notes.models import Note

REVIEW_DAYS = 2


def create_note(user, title: str) -> Note:
    """A note owned by ``user``; their manager gets a review task due in two days."""
    note = Note(title=title, owner_id=user.id, created_by_id=user.id, department_id=user.department_id)
    db.session.add(note)
    db.session.flush()
    if user.manager_id is not None:
        inbox.upsert("notes", f"note:{note.id}:review", user.manager_id, "task", note.title,
                     url=url_for("notes.detail", note_id=note.id), subject_type="notes.note", subject_id=note.id,
                     due_at=clock.now() + timedelta(days=REVIEW_DAYS))
    events.emit("notes.note_created", note_id=note.id, title=note.title, owner_id=user.id)
    return note


def remind_overdue_reviews() -> int:
    """Each overdue review task gets one reminder in its assignee's inbox; returns how many exist."""
    overdue = inbox.overdue(plugin="notes", kind="task")
    for todo in overdue:
        inbox.upsert("notes", f"{todo.source_key}:reminder", todo.assignee_id, "reminder", todo.title,
                     url=todo.url, subject_type=todo.subject_type, subject_id=todo.subject_id)
    return len(overdue)
