"""The server's reason in error messages: the precondition of a DAV error body, its
description, the heading of an HTML page, plain text; one line, at most 300 characters,
no control characters, never an entity expanded. Literal bodies from the servers named,
and Radicale's own answers."""

from __future__ import annotations

import pytest

from pimsync.storage.dav.http import HttpClient, HttpError, Response, check_status
from pimsync.storage.dav.reason import MAX_REASON, server_reason

XML = "application/xml; charset=utf-8"

CYRUS = (
    '<?xml version="1.0" encoding="utf-8"?><D:error xmlns:D="DAV:" '
    'xmlns:C="urn:ietf:params:xml:ns:caldav"><C:valid-calendar-object-resource/>'
    "<D:responsedescription>Missing ORGANIZER property on a scheduling object"
    "</D:responsedescription></D:error>"
)
SABRE = (
    '<?xml version="1.0" encoding="utf-8"?>\n<d:error xmlns:d="DAV:" '
    'xmlns:s="http://sabredav.org/ns">\n  <s:sabredav-version>4.6.0</s:sabredav-version>\n'
    "  <s:exception>Sabre\\DAV\\Exception\\Forbidden</s:exception>\n"
    "  <s:message>Permission denied to change the calendar</s:message>\n</d:error>"
)
NEED_PRIVILEGES = (
    '<D:error xmlns:D="DAV:"><D:need-privileges><D:resource><D:href>/alice/work/</D:href>'
    "<D:privilege><D:write-content/></D:privilege></D:resource></D:need-privileges></D:error>"
)
APACHE_403 = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\n<html><head>\n'
    "<title>403 Forbidden</title>\n</head><body>\n<h1>Forbidden</h1>\n<p>You don't have "
    "permission to access this resource.</p>\n</body></html>\n"
)
NGINX_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center>"
    "<h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>"
)
PORTAL = "<html><head><title>Sign in</title></head><body><h1>Hotel WiFi</h1>...</body></html>"


@pytest.mark.parametrize(
    ("body", "kind", "reason"),
    [
        (
            CYRUS,
            XML,
            "CALDAV:valid-calendar-object-resource; Missing ORGANIZER property on a "
            "scheduling object",
        ),
        (
            '<error xmlns="DAV:"><resource-must-be-null /></error>',
            "text/xml",
            "DAV:resource-must-be-null",
        ),
        (SABRE, XML, "Forbidden; Permission denied to change the calendar"),
        (NEED_PRIVILEGES, XML, "DAV:need-privileges: /alice/work/"),
        (
            '<d:multistatus xmlns:d="DAV:"><d:response><d:href>/a</d:href><d:status>HTTP/1.1'
            " 423 Locked</d:status></d:response><d:responsedescription>locked by bob"
            "</d:responsedescription></d:multistatus>",
            XML,
            "locked by bob; HTTP/1.1 423 Locked",
        ),
        (APACHE_403, "text/html; charset=iso-8859-1", "403 Forbidden"),
        (NGINX_502, "text/html", "502 Bad Gateway"),
        (PORTAL, "text/html", "Sign in: Hotel WiFi"),
        (b"Quota exceeded\n\nfor user alice", "text/plain", "Quota exceeded for user alice"),
        (b"<not xml", XML, "<not xml"),
        (b"\x89PNG\r\n", "image/png", ""),
    ],
)
def test_server_reason(body, kind, reason):
    assert server_reason(body.encode() if isinstance(body, str) else body, kind) == reason


def test_a_reason_is_one_bounded_line_without_control_characters():
    body = ("bad\x1b[31m thing\r\n" + "x" * 2000).encode()
    got = server_reason(body, "text/plain")
    assert len(got) <= MAX_REASON and got.endswith("…") and "\x1b" not in got and "\n" not in got
    html = f"<title>{'t' * 5000}\x07</title>".encode()
    assert len(server_reason(html, "text/html")) <= MAX_REASON


def test_entities_are_never_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top-secret-contents")
    external = (
        f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<D:error xmlns:D="DAV:"><D:x>&x;</D:x></D:error>'
    )
    assert "top-secret" not in server_reason(external.encode(), XML)
    laughs = '<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "lollollollol">'
    for i in range(1, 9):
        laughs += f'<!ENTITY {"ab"[i % 2]}{i} "' + f"&{'ab'[(i - 1) % 2]}{i - 1};" * 10 + '">'
    laughs = laughs.replace("&b0;", "&a;") + ']><D:error xmlns:D="DAV:"><D:x>&a8;</D:x></D:error>'
    got = server_reason(laughs.encode(), XML)
    assert len(got) <= MAX_REASON and got.count("lol") < 10


def response(status: int, reason: str, body: str, kind: str) -> Response:
    return Response(status, reason, {"content-type": kind}, body.encode(), "https://h/c/x.ics")


def test_check_status_puts_the_reason_on_one_line():
    with pytest.raises(HttpError) as err:
        check_status(response(403, "Forbidden", CYRUS, XML), "PUT", (201,))
    assert str(err.value) == (
        "https://h/c/x.ics: PUT: 403 Forbidden: CALDAV:valid-calendar-object-resource; "
        "Missing ORGANIZER property on a scheduling object"
    )
    with pytest.raises(HttpError) as err:
        check_status(response(403, "Forbidden", APACHE_403, "text/html"), "PUT", (201,))
    assert str(err.value).endswith("PUT: 403 Forbidden: 403 Forbidden (an HTML page)")
    with pytest.raises(HttpError) as err:
        check_status(response(200, "OK", PORTAL, "text/html"), "REPORT", (207,))
    assert "not a DAV answer: 'Sign in: Hotel WiFi'" in str(err.value)


def test_radicales_own_error_answers(radicale, dav_collection):
    path = dav_collection(radicale, "ics")
    client = HttpClient(radicale.url, username="alice", password="x")
    again = client.request("MKCALENDAR", path, b"")
    with pytest.raises(HttpError, match=r"MKCALENDAR: 409 Conflict: DAV:resource-must-be-null$"):
        check_status(again, "MKCALENDAR", (201,))
    body = (
        "<?xml version='1.0'?><d:sync-collection xmlns:d=\"DAV:\"><d:sync-token>bogus"
        "</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop>"
        "</d:sync-collection>"
    )
    token = client.request("REPORT", path, body.encode(), {"Depth": "0"})
    with pytest.raises(HttpError, match=r"REPORT: 403 Forbidden: DAV:valid-sync-token$"):
        check_status(token, "REPORT", (207,))
    missing = client.request("PROPFIND", path + "nope/", None, {"Depth": "0"})
    with pytest.raises(HttpError, match="404 Not Found: The requested resource could not be"):
        check_status(missing, "PROPFIND", (207,))
    two = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nEND:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:b\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    bad = client.request("PUT", path + "x.ics", two.encode(), {"Content-Type": "text/calendar"})
    with pytest.raises(HttpError) as err:
        check_status(bad, "PUT", (201,))
    assert str(err.value).endswith("PUT: 400 Bad Request")  # its body says only that again
