"""CalDAV and CardDAV storages: discovery of the collections, and their creation.

Discovery from the configured URL: the URL itself (a server root, a principal, a home
set or one collection), then ``/.well-known/caldav`` or ``/.well-known/carddav``, then
RFC 6764 service discovery (DNS SRV/TXT records, through the caldav library) for a bare
domain. From the principal: ``calendar-home-set`` / ``addressbook-home-set``; from the
home set: the collections with displayname, color and supported components.

A home set or a collection on another host (iCloud answers with
``https://pNN-caldav.icloud.com/...``) is kept as an absolute URL (``Found.path``); the
client sends the credentials there only when it is ``https://`` and the answer that named
it came from a server that had them (the configured one: never a host reached by a
redirect). ``Found.trusted`` remembers that in the discovery cache.

Two collections on the server whose ids (the last path segment, decoded) are the same
cannot both be synced to one local collection: neither is, and ``CollectionInfo.problem``
says why (kept in the discovery cache too).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, urljoin, urlsplit

from pimsync.errors import NotFound, StorageError
from pimsync.model.record import Kind
from pimsync.storage.base import CollectionInfo, check_collection_id
from pimsync.storage.dav import xml
from pimsync.storage.dav.collection import DavCollection, collection_id_of
from pimsync.storage.dav.http import (
    HttpClient,
    HttpError,
    check_status,
    origin_key,
    origin_url,
)

_HOME = {
    "ics": ("c:calendar-home-set", xml.CALDAV),
    "vcf": ("card:addressbook-home-set", xml.CARDDAV),
}
_RESOURCE = {"ics": xml.tag(xml.CALDAV, "calendar"), "vcf": xml.tag(xml.CARDDAV, "addressbook")}
_SERVICE = {"ics": "caldav", "vcf": "carddav"}


@dataclass(frozen=True)
class Found:
    """A collection found by discovery."""

    id: str
    #: the path on the storage's server, or an absolute URL on another host
    path: str
    displayname: str | None = None
    color: str | None = None
    components: tuple[str, ...] = ()
    #: why this collection is not synced (two on the server map to its id)
    problem: str | None = None
    #: on another host: the credentials may go there (an https:// URL that the
    #: authenticated server named)
    trusted: bool = False

    def to_json(self) -> dict[str, object]:
        data: dict[str, object] = {
            "id": self.id,
            "path": self.path,
            "displayname": self.displayname,
            "color": self.color,
            "components": list(self.components),
        }
        if self.problem is not None:
            data["problem"] = self.problem
        if self.trusted:
            data["trusted"] = True
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> Found:
        comps = data.get("components") or []
        problem = data.get("problem")
        return cls(
            str(data["id"]),
            str(data["path"]),
            data.get("displayname"),  # type: ignore[arg-type]
            data.get("color"),  # type: ignore[arg-type]
            tuple(comps),  # type: ignore[arg-type]
            str(problem) if problem is not None else None,
            data.get("trusted") is True,
        )


def _collisions(found: list[tuple[str, Found]]) -> list[Found]:
    """One Found per id; an id that two different server collections map to gets a
    ``problem`` naming their hrefs (as the server wrote them). ``found``: (raw href, Found)."""
    by_id: dict[str, dict[str, Found]] = {}
    for raw, f in found:
        by_id.setdefault(f.id, {}).setdefault(raw, f)  # the same href twice is one
    out = []
    for cid, group in by_id.items():
        first = next(iter(group.values()))
        if len(group) > 1:
            hrefs = list(group)
            named = ", ".join(hrefs[:-1]) + f" and {hrefs[-1]}"
            count = "two" if len(hrefs) == 2 else str(len(hrefs))
            first = replace(
                first,
                problem=(
                    f"{count} collections on the server map to the collection {cid!r}: "
                    f"{named}; neither is synced until one is renamed"
                    if len(hrefs) == 2
                    else f"{count} collections on the server map to the collection {cid!r}: "
                    f"{named}; none is synced until all but one are renamed"
                ),
            )
        out.append(first)
    return out


class DavStorage:
    def __init__(
        self,
        name: str,
        client: HttpClient,
        kind: Kind,
        read_only: bool = False,
        found: list[Found] | None = None,
    ) -> None:
        self.name = name
        self.client = client
        self.url = client.base_url  # as configured (discovery may move the client)
        self.kind = kind
        self.read_only = read_only
        self.home: str | None = None
        self.single = False  # the URL names one collection: only that one is synced
        self._found: dict[str, Found] | None = (
            {f.id: f for f in found} if found is not None else None
        )
        for f in found or ():
            if f.trusted and "://" in f.path:  # named by the server when it was discovered
                client.trust(f.path)
        #: set when this run asked the server (so the caller can remember the result)
        self.discovered = False

    # discovery -------------------------------------------------------------------------
    def _place(self, raw: str, answer_url: str) -> str:
        """Where an href of an answer points: a path (normalised) on the storage's server,
        or an absolute URL (its path normalised) on another host."""
        path = xml.normalise_href(raw, answer_url)
        key = origin_key(urljoin(answer_url, raw))
        if key == origin_key(self.client.base_url):
            return path
        return origin_url(key) + path

    def _named(self, place: str, answer_url: str) -> str:
        """A home set or collection that an answer from answer_url named: when it is on
        another host, the credentials go there too if the answer came from a server that
        had them, and the place is https:// (HttpClient.trust checks that)."""
        if "://" in place and self.client.has_credentials and self.client.trusts(answer_url):
            self.client.trust(place)
        return place

    def _href(self, element: object, answer_url: str) -> str | None:
        raw = xml.raw_href_of(element)
        return self._named(self._place(raw, answer_url), answer_url) if raw else None

    def _propfind0(self, href: str, *props: str) -> tuple[str, str, dict[str, object]] | None:
        """(where it answered: a path or another host's URL, its URL, its properties)."""
        resp = self.client.request(
            "PROPFIND", href, xml.propfind(*props), {"Depth": "0"}, follow_redirects=True
        )
        if resp.status in (404, 405, 501) or resp.status >= 500 and resp.status != 507:
            return None
        check_status(resp, "PROPFIND", (207,))
        ms = xml.parse_multistatus(resp.body, resp.url)
        if not ms.responses:
            return None
        return self._place(resp.url, resp.url), resp.url, ms.responses[0].props

    def _find_home(self) -> tuple[str, Found | None]:
        home_prop, home_ns = _HOME[self.kind]
        home_tag = xml.tag(home_ns, home_prop.split(":", 1)[1])
        principal_tag = xml.tag(xml.DAV, "current-user-principal")
        start = urlsplit(self.client.base_url).path or "/"
        candidates = [start, f"/.well-known/{_SERVICE[self.kind]}"]
        tried = []
        for href in candidates:
            got = self._propfind0(
                href,
                "d:current-user-principal",
                home_prop,
                "d:resourcetype",
                "d:displayname",
                "a:calendar-color",
            )
            tried.append(self.client.url(href))
            if got is None:
                continue
            where, answer_url, props = got
            resourcetype = props.get(xml.tag(xml.DAV, "resourcetype"))
            if resourcetype is not None and resourcetype.find(_RESOURCE[self.kind]) is not None:  # type: ignore[attr-defined]
                # the URL names one collection: sync just that one
                path = where if where.endswith("/") else where + "/"
                name = xml.text_of(props.get(xml.tag(xml.DAV, "displayname")))
                color = xml.text_of(props.get(xml.tag(xml.APPLE, "calendar-color")))
                found = Found(
                    collection_id_of(path), path, name, color, trusted=self._trusted(path)
                )
                return path.rsplit("/", 2)[0] + "/", found
            home = self._href(props.get(home_tag), answer_url)
            if home:
                return home, None
            principal = self._href(props.get(principal_tag), answer_url)
            if principal:
                got = self._propfind0(principal, home_prop)
                if got is not None:
                    home = self._href(got[2].get(home_tag), got[1])
                    if home:
                        return home, None
        service = self._rfc6764()
        if service is not None and service not in tried:
            self.client = self.client.rebased(service, trust=True)
            return self._find_home()
        raise StorageError(
            f"found no {_SERVICE[self.kind]} home (tried {', '.join(tried)}); "
            "set url to your principal or home-set URL",
            where=self.client.base_url,
        )

    def _rfc6764(self) -> str | None:
        """DNS SRV/TXT discovery for a URL that is only a domain (no path)."""
        parts = urlsplit(self.client.base_url)
        if parts.path not in ("", "/"):
            return None
        try:
            from caldav.discovery import discover_service
        except ImportError:  # pragma: no cover - caldav is a dependency
            return None
        try:
            info = discover_service(parts.hostname, _SERVICE[self.kind])
        except Exception:  # noqa: BLE001 - a failed lookup just ends discovery
            return None
        url = getattr(info, "url", None)
        return str(url) if url else None

    def _trusted(self, place: str) -> bool:
        return "://" in place and self.client.trusts(place)

    def discover(self) -> list[Found]:
        home, single = self._find_home()
        self.home = home
        self.single = single is not None
        if single is not None:
            found = [single]
        else:
            resp = self.client.request(
                "PROPFIND",
                home,
                xml.propfind(
                    "d:resourcetype",
                    "d:displayname",
                    "a:calendar-color",
                    "c:supported-calendar-component-set",
                ),
                {"Depth": "1"},
            )
            check_status(resp, "PROPFIND", (207,))
            ms = xml.parse_multistatus(resp.body, resp.url)
            listed: list[tuple[str, Found]] = []
            for r in ms.responses:
                rt = r.props.get(xml.tag(xml.DAV, "resourcetype"))
                place = self._named(self._place(r.raw, resp.url), resp.url) if r.raw else r.href
                if place == home or rt is None or rt.find(_RESOURCE[self.kind]) is None:  # type: ignore[attr-defined]
                    continue
                comps_el = r.props.get(xml.tag(xml.CALDAV, "supported-calendar-component-set"))
                comps = tuple(
                    c.get("name", "")
                    for c in (comps_el.iterchildren() if comps_el is not None else ())  # type: ignore[attr-defined]
                )
                found_one = Found(
                    collection_id_of(r.href),
                    place if place.endswith("/") else place + "/",
                    xml.text_of(r.props.get(xml.tag(xml.DAV, "displayname"))),
                    xml.text_of(r.props.get(xml.tag(xml.APPLE, "calendar-color"))),
                    comps,
                    trusted=self._trusted(place),
                )
                listed.append((r.raw or r.href, found_one))
            found = _collisions(listed)
        self._found = {f.id: f for f in sorted(found, key=lambda f: f.id)}
        self.discovered = True
        return list(self._found.values())

    def found(self) -> list[Found]:
        if self._found is None:
            self.discover()
        assert self._found is not None
        return list(self._found.values())

    # the Storage interface -------------------------------------------------------------
    def collections(self) -> list[CollectionInfo]:
        return [CollectionInfo(f.id, f.displayname, f.color, f.problem) for f in self.found()]

    def collection(self, collection_id: str) -> DavCollection:
        found = {f.id: f for f in self.found()}.get(collection_id)
        if found is None:
            raise NotFound(f"no collection {collection_id!r}", where=self.client.base_url)
        if found.problem is not None:
            raise StorageError(found.problem, where=self.client.url(found.path))
        meta = {"displayname": found.displayname, "color": found.color}
        client, path = self.client, found.path
        if "://" in path:  # on another host: a client of its own, which shares the trust
            client = self.client.rebased(origin_url(origin_key(path)) + "/")
            path = urlsplit(path).path
        col = DavCollection(client, path, found.id, self.kind, meta)

        def remember(key: str, value: str | None) -> None:
            assert self._found is not None
            current = self._found[found.id]
            self._found[found.id] = replace(current, **{key: value})
            self.discovered = True

        col.on_meta = remember
        return col

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> DavCollection:
        check_collection_id(collection_id, self.client.base_url)
        if self.home is None:
            self.discover()
        assert self.home is not None
        if self.single:
            raise StorageError(
                f"cannot create collection {collection_id!r}: the url names one collection; "
                "name the collections to sync in the pair (collections = [...]) or set url to "
                "the server or principal URL",
                where=self.url,
            )
        path = self.home + quote(collection_id, safe="@+=-._") + "/"
        meta = dict(meta or {})
        displayname, color = meta.get("displayname"), meta.get("color")
        method, body = xml.mkcol(self.kind, displayname, color)
        xml_body = {"Content-Type": "application/xml; charset=utf-8"}
        resp = self.client.request(method, path, body, xml_body if body else {})
        if _refused_body(resp.status, resp.body) and (displayname or color):
            # a server that cannot set these properties as it creates: without them (the
            # engine then sets them one by one, and says so if the server refuses)
            displayname = color = None
            method, body = xml.mkcol(self.kind, None, None)
            resp = self.client.request(method, path, body, xml_body if body else {})
        exists = resp.status == 405 or (
            resp.status in (403, 409) and xml.has_error(resp.body, "resource-must-be-null")
        )  # exists already (a run stopped right after creating it, another client): use it
        if not exists and resp.status not in (200, 201, 204):
            try:
                self.discover()  # it may be there anyway; otherwise the server's answer
            except StorageError:
                pass
            if self._found is None or collection_id not in self._found:
                check_status(resp, method, (200, 201, 204))
            return self.collection(collection_id)
        found = Found(collection_id, path, displayname, color, trusted=self._trusted(path))
        assert self._found is not None
        self._found[collection_id] = found
        self.discovered = True
        return self.collection(collection_id)


def _refused_body(status: int, body: bytes) -> bool:
    """Did the server refuse what a MKCALENDAR/MKCOL body asked (a property it cannot
    set, or the body itself), rather than the request?"""
    if status in (405,) or xml.has_error(body, "resource-must-be-null"):
        return False  # it exists
    return status in (400, 403, 409, 415, 422, 424, 500, 501)


__all__ = ["DavStorage", "Found", "HttpError"]
