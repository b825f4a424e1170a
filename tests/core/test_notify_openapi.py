"""The notification API is in the OpenAPI document, and what it answers fits what the document says."""
from __future__ import annotations

import re

from openapi_spec_validator import validate

from core import notify
from core.extensions import db
from core.org.services import find_user

from tests.conftest import PASSWORD, Client


def test_every_notification_api_route_is_documented_and_answers_as_documented(make_app):
    app = make_app(plugins=())
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        notify.send(find_user("sales1"), "task", "Visit ACME", url="/x/1")
        db.session.commit()
    client = Client(app)
    assert client.login("sales1").status_code == 302
    document = client.get("/api/v1/openapi.json").get_json()
    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routes = [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/notifications")]
    assert len(routes) == 5  # the list, read, read-all, and GET + PUT preferences
    for rule in routes:
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1"))
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path}"
    schemas = document["components"]["schemas"]
    listed = client.api("get", "/api/v1/notifications").get_json()
    assert set(listed) == set(schemas["NotificationList"]["required"])
    assert set(listed["items"][0]) == set(schemas["Notification"]["properties"])
    assert set(client.api("get", "/api/v1/notifications/preferences").get_json()) == set(
        schemas["NotificationPreferences"]["properties"])
    assert set(client.api("post", "/api/v1/notifications/read-all").get_json()) == {"marked"}
