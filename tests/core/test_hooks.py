"""Every core hookspec, exercised through the third-party ``notes`` plugin (tests/thirdparty).

The plugin is installed with pip like any other, so these tests prove a plugin can add a model, a
page, a menu item, a permission, a widget, a command and demo data without touching the core.
The guard tests at the end keep it that way: every hookspec is documented and has a test here,
and the core imports no plugin.
"""
from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
from sqlalchemy import func, inspect as sa_inspect, select

from core.extensions import db
from core.plugins import hookspecs

from tests.conftest import PASSWORD, Client

ROOT = Path(__file__).resolve().parents[2]
WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")


@pytest.fixture
def notes_app(make_app):
    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def logged_in(app, username="admin", language="zh_CN"):
    client = Client(app)
    assert client.login(username).status_code == 302
    client.post(f"/lang/{language}")
    return client


def test_hook_register_models(notes_app, make_app):
    with notes_app.app_context():
        from core import registry

        assert "notes_note" in {t.name for t in registry.owned_tables()}
        assert "notes_note" in sa_inspect(db.engine).get_table_names()
    plain = make_app(plugins=("approval",), schema=None)
    with plain.app_context():
        from core import registry

        assert "notes_note" not in {t.name for t in registry.owned_tables()}


def test_hook_register_blueprints(notes_app, make_app):
    client = logged_in(notes_app)
    assert client.get("/notes/").status_code == 200
    client.post("/notes/", {"title": "客户拜访纪要"})
    assert "客户拜访纪要" in client.get("/notes/").get_data(as_text=True)
    without = make_app(plugins=("approval",))
    with without.app_context():
        from core.demo import create_demo_company

        create_demo_company(PASSWORD)
        db.session.commit()
    assert logged_in(without).get("/notes/").status_code == 404


def test_hook_register_permissions(notes_app):
    with notes_app.app_context():
        from core import registry

        permissions = registry.permissions()
    assert {"notes.note.read", "notes.note.create", "notes.board.pin", "core.user.manage"} <= set(permissions)
    assert list(permissions) == sorted(permissions)


def test_hook_register_menu(notes_app):
    home = logged_in(notes_app, "sales1").get("/").get_data(as_text=True)
    assert re.search(r'href="/notes/"[^>]*>团队便签<', home)
    english = logged_in(notes_app, "sales1", "en").get("/").get_data(as_text=True)
    assert re.search(r'href="/notes/"[^>]*>Team notes<', english)
    # Core admin entries are shown only to admins, through the same hook.
    assert "/admin/users" not in home
    assert "/admin/users" in logged_in(notes_app, "admin").get("/").get_data(as_text=True)


def test_menu_items_with_a_group_share_one_dropdown_of_the_top_bar_where_the_first_would_stand(notes_app):
    client = logged_in(notes_app, "sales1")
    page = client.get("/crm/customers").get_data(as_text=True)
    bar = page[page.index('<ul class="navbar-nav me-auto">'):page.index("</ul>\n      <form")]
    toggles = re.findall(r'<a class="nav-link(?: dropdown-toggle)?( active)?"[^>]*>([^<]+)<', bar)
    assert [label for _active, label in toggles][:5] == ["待办", "首页", "审批", "客户管理", "团队便签"]
    assert dict((label, bool(active)) for active, label in toggles)["客户管理"] is True  # a page of the group is open
    crm = bar[bar.index(">客户管理<"):]
    crm = crm[:crm.index("</ul>")]
    assert re.search(r'class="dropdown-item active" aria-current="page" href="/crm/customers"', crm)
    assert 'href="/crm/contacts"' in crm and 'href="/crm/leads"' in crm
    assert bar.count('href="/crm/customers"') == 1


def test_hook_register_dashboard_widgets(notes_app):
    home = logged_in(notes_app).get("/").get_data(as_text=True)
    # Sorted by (order, key): the welcome card (order 0) before the org chart (10) and notes (50).
    positions = [home.index(f'id="w-{key}"') for key in ("core-welcome", "core-org", "notes-count")]
    assert positions == sorted(positions)


def test_hook_register_cli(notes_app):
    runner = notes_app.test_cli_runner()
    result = runner.invoke(args=["notes-count"])
    assert result.exit_code == 0, result.output
    with notes_app.app_context():
        from yiti_notes.models import Note

        assert result.output.strip() == str(db.session.scalar(select(func.count()).select_from(Note)))


def test_hook_demo_data(notes_app):
    with notes_app.app_context():
        from core.demo import create_demo_company
        from yiti_notes.models import Note

        create_demo_company(PASSWORD)  # a second run must not duplicate anything
        db.session.commit()
        titles = db.session.scalars(select(Note.title)).all()
    assert titles == ["Welcome note"]


# Guards ------------------------------------------------------------------------------------------


def core_hookspecs():
    return [(name, obj) for name, obj in inspect.getmembers(hookspecs, inspect.isfunction)
            if hasattr(obj, "yiti_spec")]


def test_every_hookspec_is_documented():
    specs = core_hookspecs()
    assert len(specs) >= 7
    for name, function in specs:
        doc = inspect.getdoc(function) or ""
        assert len(doc) > 60, f"hookspec {name} needs a docstring saying its arguments, result and when it is called"


def test_every_hookspec_has_a_test():
    tested = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        tested.update(re.findall(r"^def test_hook_(\w+)\(", path.read_text(encoding="utf-8"), flags=re.M))
    missing = [name for name, _ in core_hookspecs() if name not in tested]
    assert missing == [], f"hookspecs without a test_hook_<name>: {missing}"


def test_the_core_imports_no_plugin():
    plugin_packages = {"plugins", "yiti_notes"}
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in plugin_packages]
    assert offenders == []


def test_plugins_import_other_plugins_only_through_their_api_module():
    offenders = []
    for path in (ROOT / "plugins").rglob("*.py"):
        own = path.relative_to(ROOT / "plugins").parts[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "plugins" and len(parts) > 1 and parts[1] != own and parts[2:3] != ["api"]:
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
