"""One CalDAV calendar or CardDAV address book.

Listing: sync-collection (RFC 6578) where the server offers it, so an unchanged collection
costs one request and a changed one only its changes; otherwise PROPFIND Depth 1 with
etags, short-cut by getctag. Reading: calendar-multiget / addressbook-multiget in batches,
several at once. Writing: PUT with ``If-None-Match: *`` or ``If-Match``, DELETE with
``If-Match``; 412 becomes PreconditionFailed (the engine re-reads and re-plans).

Tokens stored by the engine: ``sync:<token>`` or ``ctag:<ctag>``.

Listings and multigets are parsed as their answers arrive (``HttpClient.stream``). A member
that a listing names without an etag (no getetag, a failed propstat, a 5xx response) goes
to ``Listing.unreadable``: it exists, so it is never taken as deleted. A record larger than
the client's ``max_record_size`` is reported by href and not read (the rest of its batch
is); a multiget answer larger than ``max_response_size`` is asked again in halves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from urllib.parse import quote, unquote, urlsplit

from pimsync.errors import MalformedRecord, NotFound, PreconditionFailed, StorageError
from pimsync.model.record import Kind, Record
from pimsync.storage import format_size
from pimsync.storage.base import Fetched, Listing
from pimsync.storage.dav import xml
from pimsync.storage.dav.http import (
    HttpClient,
    HttpError,
    Response,
    ResponseTooLarge,
    StreamResponse,
    check_status,
)
from pimsync.storage.vdir import href_for

#: seconds before a PUT that got a 500 is sent once more
PUT_RETRY_PAUSE = 0.5
MULTIGET_BATCH = 500  # Radicale's cost per multiget grows with the collection: few, large
CONTENT_TYPES = {"ics": "text/calendar; charset=utf-8", "vcf": "text/vcard; charset=utf-8"}
EXTENSIONS = {"ics": ".ics", "vcf": ".vcf"}


class DavCollection:
    def __init__(
        self,
        client: HttpClient,
        path: str,
        collection_id: str,
        kind: Kind,
        meta: dict[str, str | None] | None = None,
    ) -> None:
        self.client = client
        self.path = path if path.endswith("/") else path + "/"
        self.id = collection_id
        self.kind = kind
        self.where = client.url(self.path)
        self._meta = dict(meta or {})
        self.meta_keys: tuple[str, ...] = (
            ("displayname", "color") if kind == "ics" else ("displayname",)
        )
        #: a server gives a collection without a displayname one of its own (Radicale: its
        #: path), so a collection pimsync creates gets its id as the name
        self.names_unnamed = True
        #: writes that may run at once (the engine uses this many threads)
        self.concurrent_writes = client.max_connections
        #: requests wait on the network: the engine does the other side's work meanwhile
        self.remote = True
        #: a CalDAV/CardDAV server checks what it stores (RFC 4791 5.3.2.1
        #: valid-calendar-data, RFC 6352 6.3.2.1 valid-address-data): the engine reads
        #: its records without checking their values again (their structure it checks)
        self.values_checked = True
        #: told of metadata this collection wrote (the storage keeps its discovery current)
        self.on_meta: Callable[[str, str | None], None] | None = None

    # listing ---------------------------------------------------------------------------
    def _member(self, href: str) -> bool:
        """Is href a record directly inside this collection? Never the collection itself,
        never ``.``/``..`` (in any encoding), never anything deeper or elsewhere."""
        if href == self.path or not href.startswith(self.path):
            return False
        name = unquote(href[len(self.path) :].rstrip("/"))
        return name not in ("", ".", "..") and "/" not in name and "\\" not in name

    def list(self, token: str | None = None) -> Listing:
        if token and token.startswith("ctag:"):
            return self._list_propfind(token[5:])
        listing = self._list_sync(token[5:] if token and token.startswith("sync:") else None)
        return listing if listing is not None else self._list_propfind(None)

    def _entry(
        self,
        r: xml.Listed,
        items: dict[str, str | None],
        unreadable: dict[str, StorageError],
    ) -> None:
        """File one response of a listing: an etag, a deletion (404), or unreadable."""
        if r.problem is not None:
            unreadable[r.href] = StorageError(r.problem, where=self.where)
            return
        if r.href == self.path or not self._member(r.href):
            return
        if r.etag:
            items[r.href] = r.etag
            unreadable.pop(r.href, None)
        elif r.status == 404:
            items[r.href] = None  # in a delta: deleted, as the server says
            unreadable.pop(r.href, None)
        elif not r.href.endswith("/"):  # (a collection inside this one holds no record)
            if r.status is not None and not 200 <= r.status < 300:
                why = f"with status {r.status}"
            elif r.failed is not None:
                why = f"without an etag (its properties came with status {r.failed})"
            else:
                why = "without an etag"
            unreadable[r.href] = StorageError(
                f"the server listed this record {why}; it is left alone",
                where=self.client.url(r.href),
            )

    def _list_sync(self, token: str | None) -> Listing | None:
        """sync-collection; None if the server does not offer it."""
        items: dict[str, str | None] = {}
        unreadable: dict[str, StorageError] = {}
        delta = token is not None

        def read(resp: StreamResponse) -> Response | tuple[dict, dict, bool, str | None]:
            if resp.status != 207:
                return resp.response()
            page: dict[str, str | None] = {}
            bad: dict[str, StorageError] = {}
            truncated = False
            parser = xml.ListingParser(resp.chunks(), resp.url)
            for r in parser:
                truncated = truncated or (r.href == self.path and r.status == 507)
                self._entry(r, page, bad)
            return page, bad, truncated, parser.token

        for _ in range(100):  # a truncated answer (507) is continued with its new token
            result = self.client.stream(
                "REPORT",
                self.path,
                xml.sync_collection(token),
                {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
                read,
            )
            if isinstance(result, Response):
                resp = result
                if (
                    resp.status in (403, 409, 412)
                    and token
                    and xml.has_error(resp.body, "valid-sync-token")
                ):
                    # the token expired or is unknown: start again with a full listing
                    return self._list_sync(None)
                if resp.status in (400, 403, 405, 415, 501) and not token:
                    return None  # no sync-collection here
                check_status(resp, "REPORT sync-collection", (207,))
                raise AssertionError("a 207 is streamed")  # pragma: no cover
            page, bad, truncated, new_token = result
            for href in bad:
                items.pop(href, None)
            for href in page:
                unreadable.pop(href, None)
            items.update(page)
            unreadable.update(bad)
            if not new_token:
                return None
            token = new_token
            del page, bad, result
            if not truncated:
                if not delta:
                    items = {h: e for h, e in items.items() if e is not None}
                return Listing(
                    items=items, token=f"sync:{token}", delta=delta, unreadable=unreadable
                )
        raise StorageError("the server kept truncating its sync report", where=self.where)

    def _list_propfind(self, ctag: str | None) -> Listing:
        if ctag is not None:
            resp = self.client.request(
                "PROPFIND", self.path, xml.propfind("cs:getctag"), {"Depth": "0"}
            )
            check_status(resp, "PROPFIND", (207,))
            ms = xml.parse_multistatus(resp.body, resp.url)
            current = next(
                (xml.text_of(r.props.get(xml.tag(xml.CS, "getctag"))) for r in ms.responses),
                None,
            )
            if current is not None and current == ctag:
                return Listing(items={}, token=f"ctag:{ctag}", delta=True)

        def read(resp: StreamResponse) -> Response | tuple[dict, dict, str | None]:
            if resp.status != 207:
                return resp.response()
            items: dict[str, str | None] = {}
            unreadable: dict[str, StorageError] = {}
            new_ctag = None
            for r in xml.ListingParser(resp.chunks(), resp.url):
                if r.href == self.path:
                    new_ctag = r.ctag
                elif r.status != 404:  # (not listed: gone)
                    self._entry(r, items, unreadable)
            return items, unreadable, new_ctag

        result = self.client.stream(
            "PROPFIND",
            self.path,
            xml.propfind("d:getetag", "d:resourcetype", "cs:getctag"),
            {"Depth": "1"},
            read,
        )
        if isinstance(result, Response):
            check_status(result, "PROPFIND", (207,))
            raise AssertionError("a 207 is streamed")  # pragma: no cover
        items, unreadable, new_ctag = result
        items = {h: e for h, e in items.items() if e is not None}
        return Listing(
            items=items,
            token=f"ctag:{new_ctag}" if new_ctag else None,
            unreadable=unreadable,
        )

    # reading ---------------------------------------------------------------------------
    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        wanted = list(dict.fromkeys(hrefs))
        batches = [wanted[i : i + MULTIGET_BATCH] for i in range(0, len(wanted), MULTIGET_BATCH)]

        def fetch(batch: list[str]) -> list[Fetched]:
            return self._fetch(batch, values)

        if len(batches) <= 1:
            for batch in batches:
                yield from fetch(batch)
            return
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(max_workers=self.client.max_connections)
        try:
            for result in pool.map(fetch, batches):
                yield from result
        except BaseException:  # stopped (a signal, an error, a reader that gave up): the
            pool.shutdown(wait=False, cancel_futures=True)  # batches not begun are dropped
            raise
        pool.shutdown()

    def _too_large(self, href: str, etag: str, limit: str) -> Fetched:
        size = self.client.max_record_size if limit == "max_record_size" else None
        size = size if size is not None else self.client.max_response_size
        return Fetched(
            href,
            etag,
            error=StorageError(
                f"the server's record is larger than {limit} ({format_size(size)}); it is not "
                f"read and left alone on both sides. To sync it, raise "
                f"{self.client.config_key(limit)}",
                where=self.client.url(href),
            ),
        )

    def _fetch(self, batch: list[str], values: bool) -> list[Fetched]:
        """One batch: a multiget; what it could not answer within the limits is asked
        again without the record that is too large, or in halves."""
        out: dict[str, Fetched] = {}
        pending = [batch]
        while pending:
            part = pending.pop()
            got, end = self._multiget(part)
            for g in got:
                if g.href not in out:
                    out[g.href] = self._fetched(g, values)  # type: ignore[arg-type]
            rest = [h for h in part if h not in out]
            if end is not None and not rest:
                continue  # (what went past the limit was not asked for)
            if end is None:  # read to its end: what it left out is gone
                for href in rest:
                    out[href] = Fetched(
                        href, "", error=NotFound("vanished", where=self.client.url(href))
                    )
            elif end.too_large and end.href in rest:  # that record is too large
                assert end.href is not None
                out[end.href] = self._too_large(end.href, end.etag or "", "max_record_size")
                rest.remove(end.href)
                if rest:
                    pending.append(rest)
            elif len(part) == 1:  # asked alone, still too large
                limit = "max_record_size" if end.too_large else "max_response_size"
                out[part[0]] = self._too_large(part[0], end.etag or "", limit)
            elif len(rest) < len(part):
                pending.append(rest)  # the rest, asked again (halved if still too large)
            else:
                half = len(rest) // 2
                pending += [rest[half:], rest[:half]]
        return [out[h] for h in batch]

    def _multiget(self, part: list[str]) -> tuple[list[xml.Got], xml.Got | None]:
        """The responses of one multiget for these hrefs, and how it ended: None (read
        whole), a Got with ``too_large`` (a record past max_record_size: its href, if it
        was read), or a Got without (the answer past max_response_size)."""
        data_tag = (
            xml.tag(xml.CALDAV, "calendar-data")
            if self.kind == "ics"
            else xml.tag(xml.CARDDAV, "address-data")
        )
        asked = set(part)

        def read(resp: StreamResponse) -> Response | tuple[list[xml.Got], xml.Got | None]:
            if resp.status != 207:
                return resp.response()
            got: list[xml.Got] = []
            limit = self.client.max_record_size
            try:
                for g in xml.iter_multiget(resp.chunks(), resp.url, data_tag, limit):
                    if g.too_large:
                        return got, g
                    if g.href in asked:
                        got.append(g)
            except ResponseTooLarge:
                return got, xml.Got(None, None, None, None)
            return got, None

        result = self.client.stream(
            "REPORT",
            self.path,
            xml.multiget(self.kind, part),
            {"Depth": "1", "Content-Type": "application/xml; charset=utf-8"},
            read,
        )
        if isinstance(result, Response):
            check_status(result, "REPORT multiget", (207,))
            raise AssertionError("a 207 is streamed")  # pragma: no cover
        return result

    def _fetched(self, g: xml.Got, values: bool) -> Fetched:
        from pimsync.model import parse_record

        assert g.href is not None
        url = self.client.url(g.href)
        etag = g.etag or ""
        if g.status == 404 or g.data is None:
            return Fetched(g.href, "", error=NotFound("vanished", where=url))
        # XML turned the CRLF line ends into LF; records are written with CRLF
        lines = (line.rstrip("\r") for line in g.data.split("\n"))
        raw = ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogateescape")
        if len(raw) > self.client.max_record_size:
            return self._too_large(g.href, etag, "max_record_size")
        try:
            record = parse_record(raw, self.kind, url, values=values)
        except MalformedRecord as exc:
            return Fetched(g.href, etag, error=exc)
        return Fetched(g.href, etag, record=record)

    # writing ---------------------------------------------------------------------------
    def _put(self, href: str, record: Record, condition: dict[str, str]) -> str:
        body = record.to_bytes()
        if self.kind == "ics":
            from pimsync.model.info import without_method

            body = without_method(body)  # not allowed in a stored resource (RFC 4791 4.1)
        headers = {"Content-Type": CONTENT_TYPES[self.kind], **condition}
        resp = self.client.request("PUT", href, body, headers)
        if resp.status == 500:
            # once more, after a moment: a server that fails on concurrent writes of
            # records sharing something new (DAViCal inserts each new VTIMEZONE once and
            # fails the PUT that loses the race) stores it now. Safe: the PUT is
            # conditional, so if the first one landed after all, this one gets a 412
            time.sleep(PUT_RETRY_PAUSE)
            resp = self.client.request("PUT", href, body, headers)
        if resp.status == 412:
            raise PreconditionFailed("changed on the server meanwhile", where=resp.url)
        check_status(resp, "PUT", (200, 201, 204))
        etag = resp.header("ETag")
        if etag is None:
            etag = self._etag_of(href)
        return etag

    def _etag_of(self, href: str) -> str:
        resp = self.client.request("PROPFIND", href, xml.propfind("d:getetag"), {"Depth": "0"})
        if resp.status != 207:
            return ""  # unknown: the next run reads it again and finds it equal
        ms = xml.parse_multistatus(resp.body, resp.url)
        for r in ms.responses:
            etag = xml.text_of(r.props.get(xml.tag(xml.DAV, "getetag")))
            if etag:
                return etag
        return ""

    def _check_href(self, href: str) -> str:
        # also check the URL really requested: urljoin resolves dot segments
        if not self._member(href) or urlsplit(self.client.url(href)).path != href:
            raise StorageError(f"refusing href {href!r} outside the collection", where=self.where)
        return href

    def create(self, record: Record) -> tuple[str, str]:
        name = href_for(record.ident, EXTENSIONS[self.kind])
        href = self.path + quote(name, safe="@+=-._")
        return href, self._put(href, record, {"If-None-Match": "*"})

    def update(self, href: str, record: Record, etag: str) -> str:
        return self._put(self._check_href(href), record, {"If-Match": etag})

    def delete(self, href: str, etag: str) -> None:
        resp = self.client.request("DELETE", self._check_href(href), None, {"If-Match": etag})
        if resp.status == 404:
            return
        if resp.status == 412:
            raise PreconditionFailed("changed on the server meanwhile", where=resp.url)
        check_status(resp, "DELETE", (200, 204))

    def flush(self) -> None:
        return None

    # metadata --------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        return self._meta.get(key)

    def set_meta(self, key: str, value: str | None) -> None:
        name = {"displayname": "d:displayname", "color": "a:calendar-color"}[key]
        resp = self.client.request(
            "PROPPATCH",
            self.path,
            xml.proppatch({name: value}),
            {"Content-Type": "application/xml; charset=utf-8"},
        )
        check_status(resp, "PROPPATCH", (200, 207))
        refused = xml.failed_statuses(resp.body, resp.url) if resp.status == 207 else []
        if refused:
            raise HttpError(f"PROPPATCH of {key}: refused ({refused[0]})", url=resp.url)
        self._meta[key] = value
        if self.on_meta is not None:
            self.on_meta(key, value)


def collection_id_of(path: str) -> str:
    """A collection's id: the last segment of its path, decoded."""
    return unquote(path.rstrip("/").rsplit("/", 1)[-1])


__all__ = ["DavCollection", "HttpError", "collection_id_of"]
