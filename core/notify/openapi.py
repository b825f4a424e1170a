"""The notification centre's part of the OpenAPI document (``core.api.openapi`` calls ``openapi_paths``).

The API lives in ``core.notify.views`` under ``/api/v1/notifications``; its bodies are plain dicts,
so their schemas are written out here, next to the one place that knows them.
"""
from __future__ import annotations

from flask_babel import gettext as _

from core.notify.models import CHANNELS, KINDS


def openapi_paths(builder) -> None:
    """The ``Notification``, ``NotificationList`` and ``NotificationPreferences`` schemas and the five operations."""
    from core.api.openapi import _path_id, _query
    from core.resources import MAX_PER_PAGE

    when = {"type": "string", "format": "date-time"}
    builder.spec.components.schema("Notification", component={
        "type": "object",
        "required": ["id", "kind", "title", "body", "url", "created_at", "read_at"],
        "properties": {
            "id": {"type": "integer"},
            "kind": {"type": "string", "enum": list(KINDS)},
            "title": {"type": "string", "description": _("Plain text; escape it when showing it as HTML.")},
            "body": {"type": "string", "description": _("Plain text; escape it when showing it as HTML.")},
            "url": {"type": "string", "description": _("A page of this site (a path), or empty.")},
            "created_at": when,
            "read_at": {**when, "nullable": True},
        },
    })
    notification = {"$ref": "#/components/schemas/Notification"}
    builder.spec.components.schema("NotificationList", component={
        "type": "object",
        "required": ["items", "total", "page", "per_page", "unread"],
        "properties": {
            "items": {"type": "array", "items": notification},
            "total": {"type": "integer", "minimum": 0},
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "unread": {"type": "integer", "minimum": 0, "description": _("All of the caller's unread notifications.")},
        },
    })
    channels = {"type": "array", "items": {"type": "string", "enum": list(CHANNELS)}, "uniqueItems": True}
    builder.spec.components.schema("NotificationPreferences", component={
        "type": "object",
        "description": _("Per kind, the channels besides the notification centre (which always gets everything). "
                         "A kind left out of a PUT gets none."),
        "properties": {kind: channels for kind in KINDS},
        "additionalProperties": False,
        "example": {"approval": ["email", "robot"], "task": ["email"], "cc": []},
    })
    preferences = {"$ref": "#/components/schemas/NotificationPreferences"}
    tag = ["notifications"]
    builder.spec.path("/notifications", operations={
        "get": {"tags": tag, "operationId": "core_notification_list", "summary": _("List my notifications"),
                "description": _("Newest first."),
                "parameters": ["page", "per_page", _query("unread", {"type": "string", "enum": ["true", "false"]},
                                                          _("Only the unread ones."))],
                "responses": builder.responses("200", {"$ref": "#/components/schemas/NotificationList"}, "422")},
    })
    builder.spec.path("/notifications/{notification_id}/read", operations={
        "post": {"tags": tag, "operationId": "core_notification_read", "summary": _("Mark one of my notifications read"),
                 "parameters": [_path_id("notification_id")],
                 "responses": builder.responses("200", notification, "400", "403", "404")},
    })
    builder.spec.path("/notifications/read-all", operations={
        "post": {"tags": tag, "operationId": "core_notification_read_all", "summary": _("Mark all my notifications read"),
                 "responses": builder.responses("200", {
                     "type": "object", "required": ["marked"],
                     "properties": {"marked": {"type": "integer", "minimum": 0}}}, "400", "403")},
    })
    builder.spec.path("/notifications/preferences", operations={
        "get": {"tags": tag, "operationId": "core_notification_preferences",
                "summary": _("Read my notification settings"), "responses": builder.responses("200", preferences)},
        "put": {"tags": tag, "operationId": "core_notification_preferences_set",
                "summary": _("Change my notification settings"), "requestBody": builder.json_body(preferences),
                "responses": builder.responses("200", preferences, "400", "403", "422")},
    })
    builder.spec.tag({"name": "notifications", "description": _("My notification centre and notification settings.")})
