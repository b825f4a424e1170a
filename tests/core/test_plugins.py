"""The plugin manager: discovery, enabling, requirements, order, and failures that name the plugin."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from core import PluginError, create_app
from core.extensions import db
from core.plugins.manager import Plugins, discover, resolve

from tests.conftest import FAST_HASH

OUR_PLUGINS = {"approval", "crm", "srm", "hr"}


def settings(url, tmp_path, **extra):
    base = {"TESTING": True, "DATABASE_URL": url, "INSTANCE_PATH": str(tmp_path / "instance"),
            "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789", "PASSWORD_HASH": FAST_HASH}
    return {**base, **extra}


# Discovery and resolution (no database) ---------------------------------------------------------


def test_our_plugins_and_the_third_party_one_are_discovered_through_entry_points():
    installed, broken = discover()
    assert OUR_PLUGINS | {"notes"} <= set(installed)
    assert broken == {}
    assert installed["crm"].spec.requires == ("approval",)
    assert installed["crm"].distribution == "yiti-oa"
    assert installed["notes"].distribution == "yiti-notes"
    assert installed["notes"].package == "yiti_notes"


def test_plugins_load_in_dependency_order_whatever_order_the_setting_lists_them():
    installed, _ = discover()
    first = [p.spec.name for p in resolve(["crm", "hr", "approval", "srm"], installed)]
    second = [p.spec.name for p in resolve(["srm", "approval", "hr", "crm"], installed)]
    assert first == second
    assert first.index("approval") < first.index("crm")


def test_unknown_plugin_name_stops_start_up_naming_it():
    installed, _ = discover()
    with pytest.raises(PluginError, match=r"'nosuch' is enabled but not installed"):
        resolve(["approval", "nosuch"], installed)


def test_missing_requirement_stops_start_up_naming_both_plugins():
    installed, _ = discover()
    with pytest.raises(PluginError, match=r"'crm' requires plugin 'approval'"):
        resolve(["crm"], installed)


def test_plugins_that_require_each_other_are_reported_as_a_cycle(install_plugin):
    install_plugin("cyca", requires=("cycb",))
    install_plugin("cycb", requires=("cyca",))
    installed, _ = discover()
    with pytest.raises(PluginError, match="cyca, cycb require each other in a cycle"):
        resolve(["cyca", "cycb"], installed)


def test_only_enabled_plugins_are_loaded():
    plugins = Plugins(["approval", "crm"])
    assert plugins.names == ["approval", "crm"]
    registered = {name for name, _ in plugins.pm.list_name_plugin()}
    assert registered == {"core", "approval", "crm"}
    assert "srm" in plugins.installed and "srm" not in registered


# Failures at start-up ----------------------------------------------------------------------------


def test_plugin_whose_hooks_fail_to_import_stops_start_up_naming_it(install_plugin, database, tmp_path):
    install_plugin("brokenhooks", hooks="import nonexistent_module_for_yiti\n")
    with pytest.raises(PluginError, match=r"Plugin 'brokenhooks' failed to import: .*nonexistent_module_for_yiti"):
        create_app(settings(database, tmp_path, PLUGINS=["brokenhooks"]))


def test_plugin_whose_package_fails_to_import_stops_start_up_only_when_enabled(install_plugin, database, tmp_path):
    install_plugin("brokenpkg", init="raise RuntimeError('boom at import')\n")
    with pytest.raises(PluginError, match=r"Plugin 'brokenpkg': failed to import: .*boom at import"):
        create_app(settings(database, tmp_path, PLUGINS=["brokenpkg"]))
    # Not enabled: the rest of the system starts, and the Plugins page can say what is wrong.
    app = create_app(settings(database, tmp_path, PLUGINS=["approval"]))
    assert "boom at import" in app.extensions["plugins"].broken["brokenpkg"]


def test_hook_implementation_with_an_unknown_hook_name_stops_start_up(install_plugin, database, tmp_path):
    install_plugin("typo", hooks="""
        from core.plugins import hookimpl

        @hookimpl
        def register_menus(user):
            return []
    """)
    with pytest.raises(PluginError, match=r"Plugin 'typo'.*register_menus"):
        create_app(settings(database, tmp_path, PLUGINS=["typo"]))


def test_hook_implementation_with_a_wrong_argument_stops_start_up(install_plugin, database, tmp_path):
    install_plugin("badargs", hooks="""
        from core.plugins import hookimpl

        @hookimpl
        def register_menu(person):
            return []
    """)
    with pytest.raises(PluginError, match=r"(?s)Plugin 'badargs'.*register_menu.*person"):
        create_app(settings(database, tmp_path, PLUGINS=["badargs"]))


def test_permission_declared_twice_stops_start_up(install_plugin, database, tmp_path):
    install_plugin("perma", hooks="""
        from core.plugins import Permission, hookimpl

        @hookimpl
        def register_permissions():
            return [Permission("perma.thing.read", "Read things"), Permission("perma.thing.read", "Again")]
    """)
    with pytest.raises(PluginError, match=r"'perma.thing.read' is declared twice"):
        create_app(settings(database, tmp_path, PLUGINS=["perma"]))


def test_permission_outside_the_plugins_own_name_stops_start_up(install_plugin, database, tmp_path):
    install_plugin("permb", hooks="""
        from core.plugins import Permission, hookimpl

        @hookimpl
        def register_permissions():
            return [Permission("crm.customer.read", "Steal the CRM's permission")]
    """)
    with pytest.raises(PluginError, match=r"'permb' declares permission 'crm.customer.read' outside its own name"):
        create_app(settings(database, tmp_path, PLUGINS=["permb"]))


def test_model_without_the_plugin_prefix_stops_start_up(install_plugin, tmp_path):
    # Not engine-parametrised: the model class can be declared once per process.
    database = f"sqlite:///{tmp_path / 'prefix.db'}"
    install_plugin("prefixed", hooks="""
        from sqlalchemy.orm import Mapped, mapped_column
        from core.extensions import db
        from core.plugins import hookimpl

        class Stray(db.Model):
            __tablename__ = "other_stray_for_prefix_test"
            id: Mapped[int] = mapped_column(primary_key=True)

        @hookimpl
        def register_models():
            return [Stray]
    """)
    try:
        with pytest.raises(PluginError, match=r"'prefixed'.*must start with 'prefixed_'"):
            create_app(settings(database, tmp_path, PLUGINS=["prefixed"]))
    finally:  # the model's table joined the shared metadata on import: take it out again
        db.metadata.remove(db.metadata.tables["other_stray_for_prefix_test"])


# Enabling and disabling --------------------------------------------------------------------------


def test_yiti_plugins_environment_variable_chooses_the_plugins(database, tmp_path, monkeypatch):
    monkeypatch.setenv("YITI_PLUGINS", "approval, hr")
    app = create_app(settings(database, tmp_path))
    assert app.extensions["plugins"].names == ["approval", "hr"]


def test_admin_page_change_is_saved_and_applies_at_the_next_start(database, tmp_path, monkeypatch):
    monkeypatch.delenv("YITI_PLUGINS", raising=False)
    app = create_app(settings(database, tmp_path))  # no PLUGINS given: the admin decides
    with app.app_context():
        from core import migrate
        from core.demo import create_demo_company

        migrate.upgrade()
        create_demo_company("Correct-Horse-42")
        db.session.commit()
    assert set(app.extensions["plugins"].names) == OUR_PLUGINS

    from tests.conftest import Client

    admin = Client(app)
    assert admin.login("admin").status_code == 302
    page = admin.get("/admin/plugins").get_data(as_text=True)
    assert "yiti-notes" in page  # a third-party plugin is listed beside ours

    refused = admin.post("/admin/plugins/approval", {"enabled": "0"}, follow_redirects=True)
    assert "crm" in refused.get_data(as_text=True)  # approval is required by crm: refused, naming it

    response = admin.post("/admin/plugins/hr", {"enabled": "0"}, follow_redirects=True)
    body = response.get_data(as_text=True)
    assert "restart" in body or "重启" in body
    # Still running until the restart; the next start leaves hr out.
    assert "hr" in app.extensions["plugins"].names
    restarted = create_app(settings(database, tmp_path))
    assert set(restarted.extensions["plugins"].names) == OUR_PLUGINS - {"hr"}
    for each in (app, restarted):
        with each.app_context():
            db.session.remove()
            db.engine.dispose()


def test_plugins_page_is_read_only_when_the_environment_sets_the_list(app, as_user):
    admin = as_user("admin")
    page = admin.get("/admin/plugins").get_data(as_text=True)
    assert "YITI_PLUGINS" in page
    response = admin.post("/admin/plugins/hr", {"enabled": "0"}, follow_redirects=True)
    assert "YITI_PLUGINS" in response.get_data(as_text=True)
    with app.app_context():
        from core.site_settings import PLUGINS_KEY, get_setting

        assert get_setting(PLUGINS_KEY) is None


def test_disabling_a_plugin_keeps_its_tables_and_rows(make_app):
    app = make_app(plugins=("notes",), schema="migrate")
    with app.app_context():
        from yiti_notes.models import Note

        db.session.add(Note(title="keep me"))
        db.session.commit()
    without = make_app(plugins=(), schema="migrate")  # upgrading without the plugin drops nothing
    with without.app_context():
        assert db.session.execute(text("SELECT title FROM notes_note")).scalars().all() == ["keep me"]
    again = make_app(plugins=("notes",), schema="migrate")
    with again.app_context():
        from yiti_notes.models import Note

        assert db.session.scalar(select(func.count()).select_from(Note)) == 1
