"""Fixtures for core tests: throw-away plugins installed through the real entry-point path."""
from __future__ import annotations

import importlib
import sys
import textwrap
from importlib.metadata import entry_points

import pytest

from tests.conftest import PASSWORD, Client

WITH_NOTES = ("approval", "crm", "srm", "hr", "notes")

MANIFEST = '''
from core.plugins import PluginSpec
PLUGIN = PluginSpec(name={name!r}, version="0.0.1", label={name!r}, requires={requires!r})
'''


@pytest.fixture
def install_plugin(tmp_path, monkeypatch):
    """``install_plugin(name, hooks="...", requires=(), files={...})`` installs a plugin package.

    It writes the package and a ``.dist-info`` with its ``yiti.plugins`` entry point into a folder
    on ``sys.path``, exactly what ``pip install`` leaves behind, so discovery finds it the way it
    finds any third-party plugin. Everything is removed after the test.
    """
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    installed: list[str] = []

    def install(name: str, hooks: str = "", requires: tuple = (), files: dict | None = None,
                init: str | None = None) -> str:
        package = f"yiti_test_{name}"
        folder = site / package
        folder.mkdir()
        manifest = MANIFEST.format(name=name, requires=tuple(requires)) if init is None else init
        (folder / "__init__.py").write_text(textwrap.dedent(manifest), encoding="utf-8")
        (folder / "hooks.py").write_text(textwrap.dedent(hooks), encoding="utf-8")
        for relative, text in (files or {}).items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        dist = site / f"yiti_test_{name}-0.0.1.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: yiti-test-{name}\nVersion: 0.0.1\n")
        (dist / "entry_points.txt").write_text(f"[yiti.plugins]\n{name} = {package}\n")
        installed.append(package)
        importlib.invalidate_caches()
        assert name in entry_points(group="yiti.plugins").names
        return package

    yield install
    for package in installed:
        for module in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[module]
    importlib.invalidate_caches()


@pytest.fixture
def company(make_app):
    """Every plugin plus the sample third-party ``notes`` plugin, with the demo company."""
    from core.demo import create_demo_company
    from core.extensions import db

    app = make_app(plugins=WITH_NOTES)
    with app.app_context():
        create_demo_company(PASSWORD)
        db.session.commit()
    return app


def login(app, name: str) -> Client:
    """A browser-like client logged in as the demo user ``name``."""
    client = Client(app)
    assert client.login(name).status_code == 302
    return client
