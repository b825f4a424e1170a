"""Every user-facing string is translated: the zh_CN catalogue covers everything the code marks."""
from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
KEYWORDS = {"_": None, "_l": None, "gettext": None, "lazy_gettext": None, "ngettext": (1, 2)}
METHODS = [("**.py", "python"), ("**/templates/**.html", "jinja2")]


def catalogue(folder: Path):
    with open(folder / "zh_Hans_CN" / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle)


def marked_strings(folder: Path) -> dict[str, str]:
    """msgid -> where it is used, for every string marked for translation under ``folder``."""
    found = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(folder), METHODS, keywords=KEYWORDS, options_map={"**/templates/**.html": {"extensions": "jinja2.ext.i18n"}},
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        if msgid:
            found.setdefault(msgid, f"{filename}:{lineno}")
    return found


def untranslated(source: Path, translations: Path) -> list[str]:
    po = catalogue(translations)
    missing = []
    for msgid, where in sorted(marked_strings(source).items()):
        entry = po.get(msgid)
        if entry is None or not entry.string or entry.fuzzy:
            missing.append(f"{where}: {msgid!r}")
    return missing


def test_every_core_string_has_a_chinese_translation():
    missing = untranslated(ROOT / "core", ROOT / "core" / "translations")
    assert missing == [], "add these to core/translations/zh_Hans_CN (make messages):\n" + "\n".join(missing)


def test_every_plugin_string_has_a_chinese_translation():
    for plugin in sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").exists()):
        translations = plugin / "translations"
        own = marked_strings(plugin)
        if not own:
            continue
        # A plugin's strings live in its own catalogue, or in the core's while it has none.
        folder = translations if translations.is_dir() else ROOT / "core" / "translations"
        assert untranslated(plugin, folder) == [], plugin.name
