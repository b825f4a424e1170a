"""Helpers for approval tests: the demo company, flows built in a line, users by name."""
from __future__ import annotations

import itertools

import pytest

from core.extensions import db
from core.org.services import find_user
from plugins.approval import services

_keys = itertools.count(1)


@pytest.fixture
def ctx(app):
    """An app context on the demo company (all plugins, demo flows published)."""
    with app.app_context():
        yield app
        db.session.rollback()


def user(name):
    return find_user(name)


def uid(name) -> int:
    return find_user(name).id


def approval(key, source, mode="sequential", **extra) -> dict:
    return {"key": key, "type": "approval", "name": key, "approvers": source, "mode": mode, **extra}


def users(*names) -> dict:
    return {"source": "users", "users": [uid(n) for n in names]}


def make_flow(nodes, form=None, key=None, settings=None):
    """Publish a flow (a fresh key unless given) and return it."""
    return services.save_flow(None, {
        "key": key or f"t{next(_keys)}", "name": "Test flow",
        "form": form if form is not None else [{"key": "amount", "label": "Amount", "type": "money"}],
        "nodes": nodes, "settings": settings or {}, "publish": True})


def pending(req):
    """``[(node_key, username), ...]`` of the request's pending tasks."""
    from core.org.models import User

    return sorted((t.node_key, db.session.get(User, t.assignee_id).username)
                  for t in services.tasks_of(req) if t.status == "pending")


def task_of(req, name):
    """The pending task of ``name`` in ``req``."""
    matches = [t for t in services.tasks_of(req) if t.status == "pending" and t.assignee_id == uid(name)]
    assert len(matches) == 1, f"{name} has {len(matches)} pending tasks in {pending(req)}"
    return matches[0]


def act(name, verb, req, *args, **kwargs):
    """``act("salesmgr", "approve", req)``: the named user acts on their pending task of ``req``."""
    task = task_of(req, name)
    result = getattr(services, verb)(user(name), task.id, *args, **kwargs)
    db.session.commit()
    db.session.refresh(req)
    return result
