"""What a file really is, from its bytes: a small table of signatures (no libmagic needed).

``sniff(handle)`` returns a ``Kind`` — its name (the canonical extension), content type and the
extensions a file of that kind may carry — or ``None`` for anything not recognised. Executables,
HTML, SVG and other markup are recognised only to be refused: a browser or a desktop would run
them. Text is text when it has no NUL byte and decodes as UTF-8 or GBK throughout.
"""
from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass
from typing import BinaryIO

HEAD = 8192


@dataclass(frozen=True)
class Kind:
    name: str
    content_type: str
    extensions: tuple[str, ...]
    dangerous: bool = False


KINDS = {k.name: k for k in (
    Kind("pdf", "application/pdf", ("pdf",)),
    Kind("png", "image/png", ("png",)),
    Kind("jpg", "image/jpeg", ("jpg", "jpeg")),
    Kind("gif", "image/gif", ("gif",)),
    Kind("webp", "image/webp", ("webp",)),
    Kind("docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)),
    Kind("xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",)),
    Kind("pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",)),
    Kind("zip", "application/zip", ("zip",)),
    # Legacy Office files share one container (OLE2); the extension tells which program opens it.
    Kind("doc", "application/msword", ("doc",)),
    Kind("xls", "application/vnd.ms-excel", ("xls",)),
    Kind("ppt", "application/vnd.ms-powerpoint", ("ppt",)),
    Kind("txt", "text/plain", ("txt", "log", "md")),
    Kind("csv", "text/csv", ("csv",)),
    Kind("executable", "application/octet-stream", (), dangerous=True),
    Kind("html", "text/html", (), dangerous=True),
    Kind("svg", "image/svg+xml", (), dangerous=True),
)}

_EXECUTABLES = (b"MZ", b"\x7fELF", b"\xca\xfe\xba\xbe", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf",
                b"\xce\xfa\xed\xfe", b"\xcf\xfa\xed\xfe", b"#!", b"\x00asm")
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MARKUP = (b"<!doctype html", b"<html", b"<head", b"<body", b"<script", b"<iframe", b"<svg", b"<?xml", b"<meta",
           b"<!--", b"<object", b"<embed", b"<a ", b"<img", b"<div", b"<style", b"<form", b"<title", b"<table", b"<p>")


def sniff(handle: BinaryIO, extension: str = "") -> Kind | None:
    """The kind of the file ``handle`` (seekable, read from its start), or ``None``.

    ``extension`` (lower case, without the dot) only chooses between kinds the bytes cannot tell
    apart: ``.doc``/``.xls``/``.ppt`` inside OLE2, and ``.csv`` versus ``.txt`` for text.
    """
    handle.seek(0)
    head = handle.read(HEAD)
    handle.seek(0)
    if head.startswith(_EXECUTABLES):
        return KINDS["executable"]
    if head.startswith(b"%PDF-"):
        return KINDS["pdf"]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return KINDS["png"]
    if head.startswith(b"\xff\xd8\xff"):
        return KINDS["jpg"]
    if head.startswith((b"GIF87a", b"GIF89a")):
        return KINDS["gif"]
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return KINDS["webp"]
    if head.startswith(_OLE):
        return KINDS[extension] if extension in ("doc", "xls", "ppt") else KINDS["doc"]
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(handle)
    lowered = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if lowered.startswith(_MARKUP) or b"<script" in head.lower() or b"<svg" in head.lower():
        return KINDS["svg"] if b"<svg" in head.lower() else KINDS["html"]
    if _is_text(handle):
        return KINDS["csv"] if extension == "csv" else KINDS["txt"]
    return None


def _zip_kind(handle: BinaryIO) -> Kind | None:
    """An OOXML document (by the folder its main part lives in) or a plain zip; ``None`` if broken."""
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    finally:
        handle.seek(0)
    if "[Content_Types].xml" in names:
        for folder, name in (("word/", "docx"), ("xl/", "xlsx"), ("ppt/", "pptx")):
            if any(n.startswith(folder) for n in names):
                return KINDS[name]
    return KINDS["zip"]


def _is_text(handle: BinaryIO) -> bool:
    """No NUL byte, and the whole file decodes as UTF-8 (BOM allowed) or else as GBK."""
    for encoding in ("utf-8-sig", "gbk"):
        handle.seek(0)
        decoder = codecs.getincrementaldecoder(encoding)()
        try:
            for block in iter(lambda: handle.read(1 << 16), b""):
                if b"\x00" in block:
                    return False
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            continue
        finally:
            handle.seek(0)
        return True
    return False
