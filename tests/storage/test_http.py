"""The DAV HTTP client's own rules (the fault proxy tests cover the network side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pimsync.storage.dav.http import HttpClient, HttpError


def test_a_missing_ca_bundle_is_named_and_not_retried(tmp_path):
    missing = tmp_path / "no-such-ca.pem"
    client = HttpClient("https://127.0.0.1:9/", verify=Path(missing))
    with pytest.raises(HttpError, match="cannot read the CA bundle") as err:
        client.request("PROPFIND", "/")
    assert str(missing) in str(err.value)
    assert client.requests == 0


def test_authorization_goes_only_to_the_configured_host():
    import http.server
    import threading

    seen: list[tuple[int, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            seen.append((self.server.server_address[1], self.headers.get("Authorization")))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) for _ in range(2)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        home, other = (s.server_address[1] for s in servers)
        client = HttpClient(f"http://127.0.0.1:{home}/", username="alice", password="s3cret")
        assert client.request("GET", "/a").status == 204
        assert client.request("GET", f"http://127.0.0.1:{other}/b").status == 204
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
    assert seen[0][0] == home and seen[0][1] and seen[0][1].startswith("Basic ")
    assert seen[1] == (other, None)
