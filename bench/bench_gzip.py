"""Bytes on the wire for a collection listing, plain and gzipped.

Starts one Radicale on 127.0.0.1 (``tests/servers/``), seeds a calendar of ``N`` events
(default 2,000, the events of ``tests.conftest.make_event``) straight into its storage,
and lists it with pimsync's own client (``DavCollection.list``: one sync-collection REPORT
without a token, the listing of a first sync or of an expired token), once asking for gzip
(``Accept-Encoding: gzip, deflate``, what pimsync sends) and once for ``identity``. Then
the same for the multiget that reads all the records. It prints the bytes of the answer
bodies as they came over the wire (``HttpClient.wire_bytes``) and as decoded.

Run: ``.venv/bin/python bench/bench_gzip.py [N]``
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pimsync.storage.dav import http  # noqa: E402
from pimsync.storage.dav.collection import DavCollection  # noqa: E402
from pimsync.storage.dav.http import HttpClient  # noqa: E402
from tests.conftest import make_event  # noqa: E402
from tests.servers import start_radicale  # noqa: E402


def measure(url: str, path: str, encoding: str | None) -> tuple[int, int, int, int]:
    """(listing wire bytes, listing decoded bytes, multiget wire, multiget decoded)."""
    real = http.ACCEPT_ENCODING
    if encoding is not None:
        http.ACCEPT_ENCODING = encoding
    decoded = [0]
    real_chunks = http.StreamResponse.chunks

    def counting(self: http.StreamResponse):  # noqa: ANN202
        for piece in real_chunks(self):
            decoded[0] += len(piece)
            yield piece

    http.StreamResponse.chunks = counting  # type: ignore[method-assign]
    try:
        client = HttpClient(url, username="alice", password="x")
        col = DavCollection(client, path, "bench", "ics")
        listing = col.list(None)
        list_wire, list_decoded = client.wire_bytes, decoded[0]
        got = list(col.get(list(listing.items)))
        assert all(f.record is not None for f in got), "a record could not be read"
        return (
            list_wire,
            list_decoded,
            client.wire_bytes - list_wire,
            decoded[0] - list_decoded,
        )
    finally:
        http.ACCEPT_ENCODING = real
        http.StreamResponse.chunks = real_chunks  # type: ignore[method-assign]


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    with tempfile.TemporaryDirectory() as tmp:
        server = start_radicale(Path(tmp))
        try:
            files = {
                f"ev-{i:05d}.ics": make_event(f"ev-{i:05d}@bench", f"event {i}")
                for i in range(count)
            }
            path = server.seed("bench", "ics", files)
            measure(server.url, path, "identity")  # Radicale indexes the collection once
            plain = measure(server.url, path, "identity")
            gzipped = measure(server.url, path, None)
        finally:
            server.stop()
    print(f"{count} records, Radicale 3.9 on 127.0.0.1; bytes of the answer bodies")
    print(f"{'':28}{'plain':>12}{'gzip':>12}{'decoded':>12}")
    for name, i in (("listing (sync-collection)", 0), ("multiget (all records)", 2)):
        assert plain[i] == plain[i + 1] == gzipped[i + 1], (plain, gzipped)
        print(f"{name:28}{plain[i]:>12,}{gzipped[i]:>12,}{gzipped[i + 1]:>12,}")


if __name__ == "__main__":
    main()
