"""The server's reason for an error answer, as one short line for a message.

- a DAV ``error`` body (RFC 4918 section 16; CalDAV and CardDAV preconditions): the names
  of the precondition elements (``CALDAV:valid-calendar-object-resource``,
  ``DAV:resource-must-be-null``), each with the text inside it, then the text of
  ``responsedescription`` and of SabreDAV's ``message``;
- a multistatus: its ``responsedescription`` texts and the failed ``status`` lines;
- an HTML page: its ``<title>`` and first ``<h1>`` (when it says more than the title);
- plain text: the text.

The body is already bounded by the client (an answer read whole is at most 16 MiB); an XML
body is parsed with the hardened lxml parser of :mod:`pimsync.storage.dav.xml` (no
entities resolved, no DTD, no network), and only when it is at most
:data:`MAX_PARSED` bytes. What comes out is at most :data:`MAX_REASON` characters, on one
line, without control characters (a server cannot move the cursor of your terminal).
"""

from __future__ import annotations

import re

#: characters of the reason at most
MAX_REASON = 300
#: an error body larger than this is not parsed (no real one is): its start is shown
MAX_PARSED = 1 << 20

_PREFIXES = {
    "DAV:": "DAV",
    "urn:ietf:params:xml:ns:caldav": "CALDAV",
    "urn:ietf:params:xml:ns:carddav": "CARDDAV",
    "http://calendarserver.org/ns/": "CS",
    "http://sabredav.org/ns": "SABRE",
}
_SABRE = "http://sabredav.org/ns"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r"\s+")


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """Text on one line, control characters replaced by spaces, at most ``limit``
    characters (an ellipsis marks what was cut)."""
    text = _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _name(tag: str) -> str:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        prefix = _PREFIXES.get(ns)
        return f"{prefix}:{local}" if prefix else local
    return tag


def _text(el: object) -> str:
    return " ".join("".join(el.itertext()).split())  # type: ignore[attr-defined]


def _from_xml(body: bytes) -> str | None:
    from lxml import etree

    from pimsync.storage.dav.xml import DAV, _xml_parser, tag

    try:
        root = etree.fromstring(body, parser=_xml_parser())
    except etree.XMLSyntaxError:
        return None
    if root is None or not isinstance(root.tag, str):
        return None
    parts: list[str] = []
    if root.tag == tag(DAV, "error"):
        texts: list[str] = []
        for child in root:
            if not isinstance(child.tag, str):
                continue
            ns = child.tag[1:].partition("}")[0] if child.tag.startswith("{") else ""
            if ns == _SABRE and not child.tag.endswith(("}message", "}exception")):
                continue  # (sabredav-version and the like)
            if child.tag == tag(DAV, "responsedescription") or ns == _SABRE:
                text = _text(child)
                if text and child.tag.endswith("}exception"):
                    text = text.rsplit("\\", 1)[-1]  # Sabre\DAV\Exception\Forbidden
                if text:
                    texts.append(text)
                continue
            inner = _text(child)
            parts.append(f"{_name(child.tag)}: {inner}" if inner else _name(child.tag))
        parts += texts
    elif root.tag == tag(DAV, "multistatus"):
        for el in root.iter(tag(DAV, "responsedescription")):
            text = _text(el)
            if text:
                parts.append(text)
        for el in root.iter(tag(DAV, "status")):
            text = _text(el)
            if text and " 2" not in text[:10]:
                parts.append(text)
                break
    else:
        text = _text(root)
        parts.append(f"{_name(root.tag)}: {text}" if text else _name(root.tag))
    return "; ".join(dict.fromkeys(p for p in parts if p)) or None


def _from_html(text: str) -> str | None:
    from html.parser import HTMLParser

    class Heads(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.title: list[str] = []
            self.h1: list[str] = []
            self.inside: str | None = None
            self.done: set[str] = set()

        def handle_starttag(self, name: str, attrs: object) -> None:
            if name in ("title", "h1") and name not in self.done:
                self.inside = name

        def handle_endtag(self, name: str) -> None:
            if name == self.inside:
                self.done.add(name)
                self.inside = None

        def handle_data(self, data: str) -> None:
            if self.inside == "title":
                self.title.append(data)
            elif self.inside == "h1":
                self.h1.append(data)

    parser = Heads()
    try:
        parser.feed(text[:MAX_PARSED])
        parser.close()
    except Exception:  # noqa: BLE001 - a page we cannot read has no reason to give
        pass
    title = " ".join("".join(parser.title).split())
    h1 = " ".join("".join(parser.h1).split())
    if h1 and h1.lower() not in title.lower():
        return f"{title}: {h1}" if title else h1
    return title or None


def server_reason(body: bytes, content_type: str | None) -> str:
    """The reason an error answer gives, on one line ("" when it gives none)."""
    if not body or not body.strip():
        return ""
    kind = (content_type or "").split(";")[0].strip().lower()
    xmlish = kind in ("application/xml", "text/xml") or kind.endswith("+xml")
    if kind in ("text/html", "application/xhtml+xml") or (
        not xmlish and body.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html"))
    ):
        text = body[:MAX_PARSED].decode("utf-8", "replace")
        found = _from_html(text)
        return one_line(found) if found else ""
    if (xmlish or body.lstrip().startswith(b"<?xml")) and len(body) <= MAX_PARSED:
        found = _from_xml(body)
        if found is not None:
            return one_line(found)
    if kind.startswith("text/") or xmlish or not kind:
        return one_line(body[: MAX_REASON * 4].decode("utf-8", "replace"))
    return ""


__all__ = ["MAX_REASON", "one_line", "server_reason"]
