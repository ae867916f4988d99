"""webcal: a read-only subscription to one .ics file over HTTP(S) (holiday calendars, team
schedules). One collection, named after the storage. Asked with ``If-None-Match`` /
``If-Modified-Since``, so an unchanged feed costs one short request. The feed is read
whole (it is split into its records), within ``max_response_size`` and
``max_request_time``."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence

from pimsync.errors import MalformedRecord, NotFound, ReadOnlyError
from pimsync.model.record import Record
from pimsync.storage.base import CollectionInfo, Fetched, Listing, fetch_parsed
from pimsync.storage.dav.http import HttpClient, check_status


class WebcalCollection:
    def __init__(self, client: HttpClient, collection_id: str) -> None:
        self.client = client
        self.id = collection_id
        self.kind = "ics"
        self.where = client.base_url
        self._records: dict[str, Record] | None = None
        self.meta_keys: tuple[str, ...] = ()
        self._errors: list[MalformedRecord] = []
        #: reading it waits on the network (a feed is not a CalDAV server: its records'
        #: values are checked when read)
        self.remote = True

    def list(self, token: str | None = None) -> Listing:
        from pimsync.model import split

        headers = {"Accept": "text/calendar, */*;q=0.5"}
        validator = None
        if token and token.startswith("etag:"):
            headers["If-None-Match"] = validator = token[5:]
        elif token and token.startswith("lm:"):
            headers["If-Modified-Since"] = validator = token[3:]
        resp = self.client.request(
            "GET", self.client.base_url, None, headers, follow_redirects=True, whole=None
        )  # a feed is read whole (it is split), up to max_response_size
        if resp.status == 304 and validator is not None:
            return Listing(items={}, token=token, delta=True)
        check_status(resp, "GET", (200,))
        digest = hashlib.sha256(resp.body).hexdigest()
        if token == f"sha:{digest}":
            return Listing(items={}, token=token, delta=True)
        result = split(resp.body, "ics", resp.url, validate=False)
        self._records = {r.ident: r for r in result.records}
        self._errors = list(result.errors)
        etag, modified = resp.header("ETag"), resp.header("Last-Modified")
        new_token = f"etag:{etag}" if etag else f"lm:{modified}" if modified else f"sha:{digest}"
        items: dict[str, str | None] = {i: r.hash for i, r in self._records.items()}
        return Listing(items=items, token=new_token, errors=list(self._errors))

    def get(self, hrefs: Sequence[str], *, values: bool = True) -> Iterator[Fetched]:
        if self._records is None:
            self.list(None)
        assert self._records is not None
        return fetch_parsed(self._records, hrefs, self.where, values=values)

    def _refuse(self, *args: object) -> object:
        raise ReadOnlyError("a webcal subscription cannot be written", where=self.where)

    create = update = delete = set_meta = _refuse  # type: ignore[assignment]

    def flush(self) -> None:
        return None

    def get_meta(self, key: str) -> str | None:
        return None


class WebcalStorage:
    kind = "ics"
    read_only = True

    def __init__(self, name: str, client: HttpClient) -> None:
        self.name = name
        self.client = client

    def collections(self) -> list[CollectionInfo]:
        return [CollectionInfo(self.name)]

    def collection(self, collection_id: str) -> WebcalCollection:
        if collection_id != self.name:
            raise NotFound(
                f"a webcal storage has one collection, {self.name!r}", where=self.client.base_url
            )
        return WebcalCollection(self.client, collection_id)

    def create_collection(
        self, collection_id: str, meta: Mapping[str, str] | None = None
    ) -> WebcalCollection:
        raise ReadOnlyError("a webcal subscription cannot be written", where=self.client.base_url)
