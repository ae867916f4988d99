"""WebDAV XML: request bodies, and a hardened parser for multistatus answers.

The parser never resolves entities, loads a DTD or touches the network (lxml with
``resolve_entities=False, no_network=True, load_dtd=False``): an answer from a server is
data, not instructions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote, urlsplit

from pimsync.storage.dav.http import HttpError

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CARDDAV = "urn:ietf:params:xml:ns:carddav"
CS = "http://calendarserver.org/ns/"
APPLE = "http://apple.com/ns/ical/"

_HEAD = '<?xml version="1.0" encoding="utf-8"?>\n'
_NS = f'xmlns:d="{DAV}" xmlns:c="{CALDAV}" xmlns:card="{CARDDAV}" xmlns:cs="{CS}" xmlns:a="{APPLE}"'


def escape(text: str) -> str:
    """Text for XML character data (what ``xml.sax.saxutils.escape`` does: importing that
    module pulls in ``urllib.request``, about 6 ms of every run's start-up)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


def propfind(*props: str) -> bytes:
    """A PROPFIND body; ``props`` are prefixed names like ``d:getetag``."""
    inner = "".join(f"<{p}/>" for p in props)
    return f"{_HEAD}<d:propfind {_NS}><d:prop>{inner}</d:prop></d:propfind>".encode()


def sync_collection(token: str | None) -> bytes:
    tok = f"<d:sync-token>{escape(token)}</d:sync-token>" if token else "<d:sync-token/>"
    return (
        f"{_HEAD}<d:sync-collection {_NS}>{tok}<d:sync-level>1</d:sync-level>"
        "<d:prop><d:getetag/></d:prop></d:sync-collection>"
    ).encode()


def multiget(kind: str, hrefs: Iterable[str]) -> bytes:
    refs = "".join(f"<d:href>{escape(h)}</d:href>" for h in hrefs)
    if kind == "ics":
        return (
            f"{_HEAD}<c:calendar-multiget {_NS}><d:prop><d:getetag/><c:calendar-data/>"
            f"</d:prop>{refs}</c:calendar-multiget>"
        ).encode()
    return (
        f"{_HEAD}<card:addressbook-multiget {_NS}><d:prop><d:getetag/><card:address-data/>"
        f"</d:prop>{refs}</card:addressbook-multiget>"
    ).encode()


def mkcol(kind: str, displayname: str | None, color: str | None) -> tuple[str, bytes]:
    """The method and body that create a calendar (MKCALENDAR) or an address book
    (extended MKCOL, RFC 5689) with its metadata."""
    props = ""
    if displayname:
        props += f"<d:displayname>{escape(displayname)}</d:displayname>"
    if color and kind == "ics":
        props += f"<a:calendar-color>{escape(color)}</a:calendar-color>"
    if kind == "ics":
        setp = f"<d:set><d:prop>{props}</d:prop></d:set>" if props else ""
        return "MKCALENDAR", f"{_HEAD}<c:mkcalendar {_NS}>{setp}</c:mkcalendar>".encode()
    body = (
        f"{_HEAD}<d:mkcol {_NS}><d:set><d:prop><d:resourcetype><d:collection/>"
        f"<card:addressbook/></d:resourcetype>{props}</d:prop></d:set></d:mkcol>"
    )
    return "MKCOL", body.encode()


def proppatch(values: dict[str, str | None]) -> bytes:
    """Set (or, for None, remove) properties given by prefixed name."""
    sets = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in values.items() if v is not None)
    removes = "".join(f"<{k}/>" for k, v in values.items() if v is None)
    body = ""
    if sets:
        body += f"<d:set><d:prop>{sets}</d:prop></d:set>"
    if removes:
        body += f"<d:remove><d:prop>{removes}</d:prop></d:remove>"
    return f"{_HEAD}<d:propertyupdate {_NS}>{body}</d:propertyupdate>".encode()


# parsing -------------------------------------------------------------------------------
_SAFE = "/@:+,;=!$&'()*~"


def normalise_href(href: str, base: str) -> str:
    """The path of an href, in one canonical percent-encoding (servers differ in what
    they encode), so that hrefs from a listing and from a multiget compare equal."""
    path = urlsplit(href).path if "://" in href else href.split("?", 1)[0]
    if not path.startswith("/"):
        path = urlsplit(base).path.rsplit("/", 1)[0] + "/" + path
    return quote(unquote(path), safe=_SAFE)


@dataclass
class DavResponse:
    href: str
    status: int | None  # the response's own status (e.g. 404 for a deletion in a sync report)
    props: dict[str, object] = field(default_factory=dict)  # clark name -> lxml element


@dataclass
class Multistatus:
    responses: list[DavResponse]
    sync_token: str | None = None


def _status_code(text: str | None) -> int | None:
    if not text:
        return None
    parts = text.split()
    if len(parts) >= 2 and parts[1].isdigit():
        return int(parts[1])
    return None


_parser = None


def _xml_parser():  # noqa: ANN202 - lxml's parser type
    global _parser
    if _parser is None:
        from lxml import etree

        _parser = etree.XMLParser(
            resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
        )
    return _parser


def parse_xml(body: bytes, url: str):  # noqa: ANN201 - an lxml element
    from lxml import etree

    try:
        root = etree.fromstring(body, parser=_xml_parser())
    except etree.XMLSyntaxError as exc:
        raise HttpError(f"the server's answer is not well-formed XML ({exc})", url=url) from exc
    if root is None:
        raise HttpError("the server sent an empty answer", url=url)
    return root


def parse_multistatus(body: bytes, url: str) -> Multistatus:
    root = parse_xml(body, url)
    if root.tag != tag(DAV, "multistatus"):
        raise HttpError(f"expected a DAV multistatus, got <{root.tag}>", url=url)
    out: list[DavResponse] = []
    for resp in root.iterchildren(tag(DAV, "response")):
        href_el = resp.find(tag(DAV, "href"))
        if href_el is None or not (href_el.text or "").strip():
            continue
        item = DavResponse(
            normalise_href(href_el.text.strip(), url),
            _status_code(resp.findtext(tag(DAV, "status"))),
        )
        for propstat in resp.iterchildren(tag(DAV, "propstat")):
            code = _status_code(propstat.findtext(tag(DAV, "status")))
            prop = propstat.find(tag(DAV, "prop"))
            if prop is None or (code is not None and not 200 <= code < 300):
                continue
            for child in prop:
                item.props[child.tag] = child
        out.append(item)
    token = root.findtext(tag(DAV, "sync-token"))
    return Multistatus(out, token.strip() if token else None)


@dataclass(slots=True)
class Listed:
    """One response of a listing (sync-collection or PROPFIND Depth 1): only its texts."""

    href: str
    status: int | None
    etag: str | None
    ctag: str | None


_CHUNK = 1 << 16


class ListingParser:
    """A listing multistatus (sync-collection or PROPFIND Depth 1), parsed as a stream:
    iterating yields each ``<response>`` reduced to its href, status and etag (and getctag),
    and frees it, so a listing of many thousand records never holds a whole XML tree or
    a list of every response. ``token`` is the sync-token, once iteration is done."""

    def __init__(self, body: bytes, url: str) -> None:
        if not body.strip():
            raise HttpError("the server sent an empty answer", url=url)
        self.body, self.url = body, url
        self.token: str | None = None

    def __iter__(self) -> Iterator[Listed]:
        from lxml import etree

        url = self.url
        parser = etree.XMLPullParser(
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            huge_tree=True,
        )
        response, href_tag = tag(DAV, "response"), tag(DAV, "href")
        status_tag, propstat_tag, prop_tag = (
            tag(DAV, "status"),
            tag(DAV, "propstat"),
            tag(DAV, "prop"),
        )
        etag_tag, ctag_tag, token_tag = (
            tag(DAV, "getetag"),
            tag(CS, "getctag"),
            tag(DAV, "sync-token"),
        )
        root = None
        try:
            for start in range(0, len(self.body), _CHUNK):
                parser.feed(self.body[start : start + _CHUNK])
                for event, el in parser.read_events():
                    if event == "start":
                        if root is None:
                            root = el
                            if el.tag != tag(DAV, "multistatus"):
                                raise HttpError(
                                    f"expected a DAV multistatus, got <{el.tag}>", url=url
                                )
                        continue
                    if el.tag == token_tag and el.getparent() is root:
                        self.token = (el.text or "").strip() or None
                    elif el.tag == response and el.getparent() is root:
                        href_el = el.find(href_tag)
                        if href_el is not None and (href_el.text or "").strip():
                            etag = ctag = None
                            for propstat in el.iterchildren(propstat_tag):
                                code = _status_code(propstat.findtext(status_tag))
                                prop = propstat.find(prop_tag)
                                if prop is None or (code is not None and not 200 <= code < 300):
                                    continue
                                etag = text_of(prop.find(etag_tag)) or etag
                                ctag = text_of(prop.find(ctag_tag)) or ctag
                            yield Listed(
                                normalise_href(href_el.text.strip(), url),
                                _status_code(el.findtext(status_tag)),
                                etag,
                                ctag,
                            )
                        el.clear()
                        while el.getprevious() is not None:  # drop what is done with
                            del root[0]
            parser.close()
        except etree.XMLSyntaxError as exc:
            raise HttpError(f"the server's answer is not well-formed XML ({exc})", url=url) from exc
        if root is None:
            raise HttpError("the server sent an empty answer", url=url)


def failed_statuses(body: bytes, url: str) -> list[int]:
    """Every 4xx/5xx status anywhere in a multistatus (e.g. a refused PROPPATCH)."""
    root = parse_xml(body, url)
    codes = [_status_code(el.text) for el in root.iter(tag(DAV, "status"))]
    return [c for c in codes if c is not None and c >= 400]


def text_of(element: object) -> str | None:
    """The text of a property element (None if absent or empty)."""
    if element is None:
        return None
    text = "".join(element.itertext()).strip()  # type: ignore[attr-defined]
    return text or None


def href_of(element: object, url: str) -> str | None:
    """The href inside a property such as current-user-principal or calendar-home-set."""
    if element is None:
        return None
    found = element.find(tag(DAV, "href"))  # type: ignore[attr-defined]
    if found is None or not (found.text or "").strip():
        return None
    return normalise_href(found.text.strip(), url)


def has_error(body: bytes, name: str) -> bool:
    """Does a DAV error body name this precondition (e.g. valid-sync-token)?"""
    return name.encode() in body
