"""The streaming listing parser: the same answers as the tree parser, any size, hardened."""

from __future__ import annotations

import tracemalloc

import pytest

from pimsync.storage.dav import xml
from pimsync.storage.dav.http import HttpError

URL = "http://127.0.0.1:5232/alice/cal/"
OK = "<d:status>HTTP/1.1 200 OK</d:status>"


def _response(href: str, etag: str | None, *, status: str | None = None, extra: str = "") -> str:
    if status is not None:
        return f"<d:response><d:href>{href}</d:href><d:status>{status}</d:status></d:response>"
    prop = f"<d:getetag>{etag}</d:getetag>" if etag is not None else ""
    return (
        f"<d:response><d:href>{href}</d:href><d:propstat><d:prop>{prop}{extra}</d:prop>"
        f"{OK}</d:propstat></d:response>"
    )


def _multistatus(*responses: str, token: str | None = "http://radicale.org/ns/sync/5") -> bytes:
    tok = f"<d:sync-token>{token}</d:sync-token>" if token is not None else ""
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<d:multistatus xmlns:d="DAV:" xmlns:cs="http://calendarserver.org/ns/">'
        + "".join(responses)
        + tok
        + "</d:multistatus>"
    ).encode()


def _as_tree(body: bytes) -> tuple[list[tuple[str, int | None, str | None]], str | None]:
    ms = xml.parse_multistatus(body, URL)
    rows = [
        (r.href, r.status, xml.text_of(r.props.get(xml.tag(xml.DAV, "getetag"))))
        for r in ms.responses
    ]
    return rows, ms.sync_token


def _parse(body: bytes) -> tuple[list[xml.Listed], str | None]:
    parser = xml.ListingParser(body, URL)
    listed = list(parser)
    return listed, parser.token


def _as_stream(body: bytes) -> tuple[list[tuple[str, int | None, str | None]], str | None]:
    listed, token = _parse(body)
    return [(r.href, r.status, r.etag) for r in listed], token


def test_same_answer_as_the_tree_parser():
    body = _multistatus(
        _response("/alice/cal/a.ics", '"1"'),
        _response("/alice/cal/b%20c.ics", '"2"'),
        _response("http://127.0.0.1:5232/alice/cal/d.ics", '"3"'),  # absolute
        _response("/alice/cal/gone.ics", None, status="HTTP/1.1 404 Not Found"),
        _response("/alice/cal/", None),
        _response("", '"x"'),  # no href: left out by both
    )
    rows, token = _as_stream(body)
    assert (rows, token) == _as_tree(body)
    assert rows == [
        ("/alice/cal/a.ics", None, '"1"'),
        ("/alice/cal/b%20c.ics", None, '"2"'),
        ("/alice/cal/d.ics", None, '"3"'),
        ("/alice/cal/gone.ics", 404, None),
        ("/alice/cal/", None, None),
    ]
    assert token == "http://radicale.org/ns/sync/5"


def test_a_failed_propstat_gives_no_etag_and_the_ctag_is_read():
    failed = (
        "<d:response><d:href>/alice/cal/a.ics</d:href><d:propstat><d:prop><d:getetag>"
        '"bad"</d:getetag></d:prop><d:status>HTTP/1.1 404 Not Found</d:status></d:propstat>'
        "</d:response>"
    )
    body = _multistatus(
        failed, _response("/alice/cal/", None, extra="<cs:getctag>c-7</cs:getctag>"), token=None
    )
    listed, token = _parse(body)
    assert [(r.href, r.etag, r.ctag) for r in listed] == [
        ("/alice/cal/a.ics", None, None),
        ("/alice/cal/", None, "c-7"),
    ]
    assert token is None


def test_only_responses_directly_in_the_multistatus_count():
    nested = (
        "<d:response><d:href>/alice/cal/a.ics</d:href><d:propstat><d:prop>"
        "<d:getetag>\"1\"</d:getetag><x:odd xmlns:x='urn:x'><d:response><d:href>/alice/cal/"
        "inner.ics</d:href></d:response><d:sync-token>inner</d:sync-token></x:odd></d:prop>"
        f"{OK}</d:propstat></d:response>"
    )
    listed, token = _parse(_multistatus(nested, token="outer"))
    assert [r.href for r in listed] == ["/alice/cal/a.ics"]
    assert token == "outer"


def test_a_large_listing_across_chunk_boundaries_is_read_whole():
    n = 5000  # about 600 KB: many 64 KB chunks, elements cut at every boundary
    body = _multistatus(*(_response(f"/alice/cal/e{i:05d}.ics", f'"etag-{i}"') for i in range(n)))
    assert len(body) > 8 * 65536
    rows, token = _as_stream(body)
    assert (rows, token) == _as_tree(body)
    assert len(rows) == n and rows[-1] == ("/alice/cal/e04999.ics", None, '"etag-4999"')


def test_a_listing_is_not_held_as_a_tree():
    body = _multistatus(
        *(_response(f"/alice/cal/e{i:05d}.ics", f'"etag-{i}"') for i in range(20000))
    )
    tracemalloc.start()
    try:
        _parse(body)
        _, streamed = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        rows = _as_tree(body)
        _, tree = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(rows[0]) == 20000
    assert streamed < tree / 2, (streamed, tree)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "empty answer"),
        (b"   \n", "empty answer"),
        (b"<html><body>Login</body></html>", "expected a DAV multistatus"),
        (b'<d:multistatus xmlns:d="DAV:"><d:response>', "not well-formed XML"),
        (b"not xml at all", "not well-formed XML"),
    ],
)
def test_bad_answers_are_named(body, message):
    with pytest.raises(HttpError, match=message) as caught:
        _parse(body)
    assert URL in str(caught.value)


def test_entities_are_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-MARKER")
    body = (
        f'<?xml version="1.0"?>\n<!DOCTYPE d:multistatus [<!ENTITY s SYSTEM "file://{secret}">'
        '<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        '<d:multistatus xmlns:d="DAV:"><d:response><d:href>/alice/cal/x.ics</d:href>'
        '<d:propstat><d:prop><d:getetag>"&s;&b;"</d:getetag></d:prop>'
        f"{OK}</d:propstat></d:response></d:multistatus>"
    ).encode()
    try:
        listed, _ = _parse(body)
    except HttpError:
        return  # refusing the answer is fine too
    assert all("SECRET-MARKER" not in (r.etag or "") for r in listed)
    assert all("aaaaaaaaaa" not in (r.etag or "") for r in listed)


@pytest.mark.parametrize("text", ["plain", "a & b < c > d", "&amp; already", "]]>", "ünï"])
def test_escape_matches_the_standard_library(text):
    from xml.sax.saxutils import escape

    assert xml.escape(text) == escape(text)


# --- hrefs: one encoding per path segment, bounded length ---------------------------------


@pytest.mark.parametrize(
    ("href", "expected"),
    [
        ("/alice/c1/", "/alice/c1/"),
        ("/alice/%63%31/", "/alice/c1/"),  # an unreserved character, encoded: the same URL
        ("/alice/evil%2Fc1/", "/alice/evil%2Fc1/"),  # an encoded slash stays encoded
        ("/alice/evil%2fc1/", "/alice/evil%2Fc1/"),
        ("/alice/back%5Cslash/", "/alice/back%5Cslash/"),
        ("/alice/a b/ü.ics", "/alice/a%20b/%C3%BC.ics"),
        ("/alice/a%20b/%c3%bc.ics", "/alice/a%20b/%C3%BC.ics"),
        ("/alice/%FF.ics", "/alice/%FF.ics"),  # not UTF-8: kept byte for byte
        ("http://127.0.0.1:5232/alice/x%2Fy.ics?q=1", "/alice/x%2Fy.ics"),
        ("rel%2Fative.ics", "/alice/cal/rel%2Fative.ics"),
    ],
)
def test_hrefs_are_normalised_per_segment(href, expected):
    assert xml.normalise_href(href, URL) == expected


def test_a_collection_id_keeps_an_encoded_slash_as_a_slash():
    from pimsync.storage.dav.collection import collection_id_of

    assert collection_id_of("/alice/evil%2Fc1/") == "evil/c1"  # a vdir refuses this name
    assert collection_id_of("/alice/%63%31/") == "c1"


def test_a_listing_fed_in_pieces_is_the_same_listing():
    body = _multistatus(*(_response(f"/alice/cal/e{i}.ics", f'"{i}"') for i in range(50)))
    whole = _as_stream(body)
    parser = xml.ListingParser((body[i : i + 7] for i in range(0, len(body), 7)), URL)
    rows = [(r.href, r.status, r.etag) for r in parser]
    assert (rows, parser.token) == whole


def test_an_overlong_href_is_reported_not_used():
    long = "/alice/cal/" + "a" * 5000 + ".ics"
    listed, _ = _parse(_multistatus(_response(long, '"1"'), _response("/alice/cal/ok.ics", '"2"')))
    assert listed[0].problem and "longer than 4096" in listed[0].problem
    assert listed[0].etag is None and listed[0].href.endswith("…")
    assert len(listed[0].href) < 300
    assert (listed[1].href, listed[1].etag, listed[1].problem) == ("/alice/cal/ok.ics", '"2"', None)
    # nor is it taken from a discovery answer
    ms = xml.parse_multistatus(_multistatus(_response(long, '"1"')), URL)
    assert ms.responses == []


def test_a_listing_entry_larger_than_its_bound_fails_the_listing():
    huge = _response(
        "/alice/cal/a.ics", '"1"', extra=f"<x:pad xmlns:x='urn:x'>{'p' * (2 << 20)}</x:pad>"
    )
    with pytest.raises(HttpError, match="larger than 1 MiB") as caught:
        _parse(_multistatus(huge))
    assert "/alice/cal/a.ics" in str(caught.value)
    junk = b"<d:multistatus xmlns:d='DAV:'><x:junk xmlns:x='urn:x'>" + b"j" * (2 << 20)
    with pytest.raises(HttpError, match="outside any <response>"):
        _parse(junk + b"</x:junk></d:multistatus>")


def test_a_multiget_record_past_the_limit_ends_the_answer_with_its_href():
    data = xml.tag(xml.CALDAV, "calendar-data")

    def resp(name: str, size: int) -> str:
        return (
            f"<d:response><d:href>/alice/cal/{name}.ics</d:href><d:propstat><d:prop>"
            f'<d:getetag>"{name}"</d:getetag><c:calendar-data>{"x" * size}</c:calendar-data>'
            f"</d:prop>{OK}</d:propstat></d:response>"
        )

    body = (
        f'<d:multistatus xmlns:d="DAV:" xmlns:c="{xml.CALDAV}">'
        + resp("small", 100)
        + resp("big", 3 << 20)
        + resp("after", 100)
        + "</d:multistatus>"
    ).encode()
    got = list(xml.iter_multiget(body, URL, data, 1 << 20))
    assert [(g.href, g.etag, g.too_large) for g in got] == [
        ("/alice/cal/small.ics", '"small"', False),
        ("/alice/cal/big.ics", '"big"', True),
    ]
    assert got[0].data == "x" * 100 and got[1].data is None
    everything = list(xml.iter_multiget(body, URL, data, 4 << 20))
    assert [g.href for g in everything if not g.too_large] == [
        "/alice/cal/small.ics",
        "/alice/cal/big.ics",
        "/alice/cal/after.ics",
    ]
