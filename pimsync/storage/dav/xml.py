"""WebDAV XML: request bodies, and a hardened parser for multistatus answers.

The parser never resolves entities, loads a DTD or touches the network (lxml with
``resolve_entities=False, no_network=True, load_dtd=False``): an answer from a server is
data, not instructions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, unquote_to_bytes, urlsplit

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


def mkcol(kind: str, displayname: str | None, color: str | None) -> tuple[str, bytes | None]:
    """The method and body that create a calendar (MKCALENDAR, RFC 4791 5.3.1) or an
    address book (extended MKCOL, RFC 5689) with its metadata. A calendar without
    metadata is made without a body: an empty ``<mkcalendar/>`` element is refused by
    Cyrus and DAViCal (500), which take either no body or a ``DAV:set``."""
    props = ""
    if displayname:
        props += f"<d:displayname>{escape(displayname)}</d:displayname>"
    if color and kind == "ics":
        props += f"<a:calendar-color>{escape(color)}</a:calendar-color>"
    if kind == "ics":
        if not props:
            return "MKCALENDAR", None
        setp = f"<d:set><d:prop>{props}</d:prop></d:set>"
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
_SAFE = "@:+,;=!$&'()*~"  # kept as they are inside a path segment (and unreserved chars)
#: an href longer than this is not used (no server needs it; a hostile one may send more)
MAX_HREF = 4096
#: one <response> of a listing larger than this fails the listing (a real one is < 1 KiB)
MAX_LISTING_ENTRY = 1 << 20


_PLAIN = re.compile(r"[A-Za-z0-9/_.~@:+,;=!$&'()*-]*")  # needs no (re-)encoding


def normalise_href(href: str, base: str) -> str:
    """The path of an href, in one canonical percent-encoding (servers differ in what
    they encode), so that hrefs from a listing and from a multiget compare equal.

    Each path segment is decoded and encoded on its own: an encoded ``/`` (``%2F``) or
    ``\\`` stays encoded, so ``/alice/a%2Fb/`` never becomes the other URL ``/alice/a/b/``."""
    path = urlsplit(href).path if "://" in href else href.split("?", 1)[0]
    if not path.startswith("/"):
        path = urlsplit(base).path.rsplit("/", 1)[0] + "/" + path
    if _PLAIN.fullmatch(path):
        return path
    return "/".join(quote(unquote_to_bytes(seg), safe=_SAFE) for seg in path.split("/"))


def too_long(href: str) -> str:
    """A stand-in key for an href longer than MAX_HREF (never equal to a real href: the
    ellipsis would be percent-encoded in one)."""
    return href[:200] + "…"


@dataclass
class DavResponse:
    href: str
    status: int | None  # the response's own status (e.g. 404 for a deletion in a sync report)
    props: dict[str, object] = field(default_factory=dict)  # clark name -> lxml element
    raw: str = ""  # the href as the server wrote it (for messages)


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
        raw = (href_el.text or "").strip() if href_el is not None else ""
        if not raw or len(raw) > MAX_HREF:
            continue
        item = DavResponse(
            normalise_href(raw, url), _status_code(resp.findtext(tag(DAV, "status"))), raw=raw
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
    #: the status of a propstat that failed (e.g. 404, 500), if one did
    failed: int | None = None
    #: why the response cannot be used at all (an overlong href: ``href`` is a stand-in)
    problem: str | None = None


@dataclass(slots=True)
class Got:
    """One response of a multiget: the record's data, or why there is none."""

    href: str | None  # None: too large before its href was read
    status: int | None
    etag: str | None
    data: str | None
    #: the response grew past the record limit and was not read to its end
    too_large: bool = False


_CHUNK = 1 << 16


def _pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), _CHUNK):
        yield body[start : start + _CHUNK]


def _pull(source: bytes | Iterable[bytes], url: str, entry_limit: int) -> Iterator[tuple]:
    """A multistatus, parsed as a stream: yields ``("response", element)`` for each
    complete ``<response>`` directly in the multistatus (freed once the caller goes on),
    ``("token", text)`` for the sync-token, and ``("too large", href, etag)`` (then stops)
    if a response grows past ``entry_limit`` bytes before it ends (href and etag: what was
    read of it, or None). Anything else in the multistatus that grows past the limit fails
    the answer. Memory stays about one response plus one piece of input."""
    from lxml import etree

    chunks = _pieces(source) if isinstance(source, bytes | bytearray) else source
    parser = etree.XMLPullParser(
        events=("start", "end"),
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=True,
    )
    multistatus, response = tag(DAV, "multistatus"), tag(DAV, "response")
    href_tag, etag_tag, token_tag = tag(DAV, "href"), tag(DAV, "getetag"), tag(DAV, "sync-token")
    root = top = None  # the multistatus; the element directly in it being read
    content = False
    fed = mark = 0  # bytes fed; bytes fed when the last top-level element started or ended
    try:
        for chunk in chunks:
            if not content and chunk.strip():
                content = True
            fed += len(chunk)
            parser.feed(chunk)
            for event, el in parser.read_events():
                if event == "start":
                    if root is None:
                        root, mark = el, fed
                        if el.tag != multistatus:
                            raise HttpError(f"expected a DAV multistatus, got <{el.tag}>", url=url)
                    elif top is None and el.getparent() is root:
                        top, mark = el, fed
                    continue
                if el is top:
                    top, mark = None, fed
                    if el.tag == response:
                        yield ("response", el)
                    elif el.tag == token_tag:
                        yield ("token", (el.text or "").strip() or None)
                    el.clear()
                    while el.getprevious() is not None:  # drop what is done with
                        del root[0]
            if root is not None and fed - mark > entry_limit:
                if top is not None and top.tag == response:
                    # what was read of it so far: its href (which servers send first)
                    found = top.find(href_tag)
                    href = (found.text or "").strip() or None if found is not None else None
                    etag = next((text_of(e) for e in top.iter(etag_tag)), None)
                    yield ("too large", href, etag)
                    return
                what = f"<{top.tag}>" if top is not None else "text"
                raise HttpError(
                    f"the answer holds {what} larger than {entry_limit} bytes outside any "
                    "<response>: not an answer pimsync reads",
                    url=url,
                )
        parser.close()
    except etree.XMLSyntaxError as exc:
        if not content:
            raise HttpError("the server sent an empty answer", url=url) from exc
        raise HttpError(f"the server's answer is not well-formed XML ({exc})", url=url) from exc
    if root is None:
        raise HttpError("the server sent an empty answer", url=url)


def _props(el: object, status_tag: str, propstat_tag: str, prop_tag: str) -> Iterator[object]:
    """The <prop> elements of a response's successful propstats."""
    for propstat in el.iterchildren(propstat_tag):  # type: ignore[attr-defined]
        code = _status_code(propstat.findtext(status_tag))
        prop = propstat.find(prop_tag)
        if prop is not None and (code is None or 200 <= code < 300):
            yield prop


class ListingParser:
    """A listing multistatus (sync-collection or PROPFIND Depth 1), parsed as a stream:
    iterating yields each ``<response>`` reduced to its href, status and etag (and getctag),
    and frees it, so a listing of many thousand records never holds a whole XML tree or
    a list of every response. ``body`` is the whole answer or its pieces as they arrive
    (``StreamResponse.chunks()``). ``token`` is the sync-token, once iteration is done.

    A response with an href longer than MAX_HREF is yielded with a stand-in href and a
    ``problem``; a response larger than MAX_LISTING_ENTRY fails the listing."""

    def __init__(self, body: bytes | Iterable[bytes], url: str) -> None:
        if isinstance(body, bytes | bytearray) and not body.strip():
            raise HttpError("the server sent an empty answer", url=url)
        self.body, self.url = body, url
        self.token: str | None = None

    def __iter__(self) -> Iterator[Listed]:
        url = self.url
        href_tag, status_tag, propstat_tag, prop_tag = (
            tag(DAV, "href"),
            tag(DAV, "status"),
            tag(DAV, "propstat"),
            tag(DAV, "prop"),
        )
        etag_tag, ctag_tag = tag(DAV, "getetag"), tag(CS, "getctag")
        for kind, *rest in _pull(self.body, url, MAX_LISTING_ENTRY):
            if kind == "token":
                self.token = rest[0]
                continue
            if kind == "too large":
                raise HttpError(
                    f"a <response> of the listing is larger than {MAX_LISTING_ENTRY >> 20} MiB "
                    f"(href {(rest[0] or '?')[:200]!r}): not a listing pimsync reads",
                    url=url,
                )
            el = rest[0]
            href_el = el.find(href_tag)
            raw = (href_el.text or "").strip() if href_el is not None else ""
            if not raw:
                continue
            status = _status_code(el.findtext(status_tag))
            if len(raw) > MAX_HREF:
                why = f"the server listed an href longer than {MAX_HREF} characters; not used"
                yield Listed(too_long(raw), status, None, None, problem=why)
                continue
            etag = ctag = failed = None
            for propstat in el.iterchildren(propstat_tag):
                code = _status_code(propstat.findtext(status_tag))
                if code is not None and not 200 <= code < 300:
                    failed = failed or code
            for prop in _props(el, status_tag, propstat_tag, prop_tag):
                etag = text_of(prop.find(etag_tag)) or etag  # type: ignore[attr-defined]
                ctag = text_of(prop.find(ctag_tag)) or ctag  # type: ignore[attr-defined]
            yield Listed(normalise_href(raw, url), status, etag, ctag, failed)


def iter_multiget(
    body: bytes | Iterable[bytes], url: str, data_tag: str, record_limit: int
) -> Iterator[Got]:
    """A calendar-multiget / addressbook-multiget answer, parsed as a stream. A response
    that grows past ``record_limit`` bytes (plus room for its XML) is yielded with
    ``too_large`` and ends the iteration: the caller asks again for the rest."""
    href_tag, status_tag, propstat_tag, prop_tag = (
        tag(DAV, "href"),
        tag(DAV, "status"),
        tag(DAV, "propstat"),
        tag(DAV, "prop"),
    )
    etag_tag = tag(DAV, "getetag")
    for kind, *rest in _pull(body, url, record_limit + _CHUNK):
        if kind == "too large":
            raw, etag = rest
            ok = raw is not None and len(raw) <= MAX_HREF
            yield Got(normalise_href(raw, url) if ok else None, None, etag, None, too_large=True)
            return
        if kind != "response":
            continue
        el = rest[0]
        href_el = el.find(href_tag)
        raw = (href_el.text or "").strip() if href_el is not None else ""
        if not raw or len(raw) > MAX_HREF:
            continue  # never asked for: an href pimsync asks for is short
        etag = data = None
        for prop in _props(el, status_tag, propstat_tag, prop_tag):
            etag = text_of(prop.find(etag_tag)) or etag  # type: ignore[attr-defined]
            found = prop.find(data_tag)  # type: ignore[attr-defined]
            if found is not None:
                data = text_of(found)
        yield Got(normalise_href(raw, url), _status_code(el.findtext(status_tag)), etag, data)


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
    if found is None or not (found.text or "").strip() or len(found.text.strip()) > MAX_HREF:
        return None
    return normalise_href(found.text.strip(), url)


def raw_href_of(element: object) -> str | None:
    """The href inside a property, as the server wrote it (None if absent or too long)."""
    if element is None:
        return None
    found = element.find(tag(DAV, "href"))  # type: ignore[attr-defined]
    text = (found.text or "").strip() if found is not None else ""
    return text if text and len(text) <= MAX_HREF else None


def has_error(body: bytes, name: str) -> bool:
    """Does a DAV error body name this precondition (e.g. valid-sync-token)?"""
    return name.encode() in body
