"""Archives of real servers: export from Radicale, Xandikos, Cyrus and DAViCal, wipe,
restore, compare."""

from __future__ import annotations

import uuid

from pimsync.cli import main
from pimsync.export.verify import verify
from pimsync.model import parse_record
from tests.conftest import make_card, make_event


def server_state(server, path: str, kind: str) -> dict[str, str]:
    out = {}
    for href in server.etags(path):
        record = parse_record(server.request("GET", href).body, kind, href)
        out[record.ident] = record.hash
    return out


def test_export_wipe_restore_round_trip(tmp_path, dav_server, capsys):
    kinds = {"ics": make_event, "vcf": make_card}
    paths = {}
    for kind, make in kinds.items():
        name = f"x{uuid.uuid4().hex[:8]}"
        path = dav_server.make_collection(name, kind)
        for i in range(30):
            r = dav_server.put(f"{path}r{i}.{kind}", make(f"{name}-r{i}", f"Record {i}"))
            assert r.status in (200, 201, 204)
        paths[kind] = path
    before = {kind: server_state(dav_server, path, kind) for kind, path in paths.items()}
    auth = ""
    if dav_server.username:
        auth = f'username = "{dav_server.username}"\npassword = "{dav_server.password or "x"}"\n'
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f"""
[storages.cal]
type = "caldav"
url = "{dav_server.url}"
{auth}
[storages.cards]
type = "carddav"
url = "{dav_server.url}"
{auth}
[exports.server]
storages = ["cal", "cards"]
path = "backups"
"""
    )
    assert main(["--config", str(cfg), "export"]) == 0
    [archive] = list((tmp_path / "backups").iterdir())
    assert verify(archive).records >= 60
    # wipe both collections
    for path in paths.values():
        for href, etag in dav_server.etags(path).items():
            assert dav_server.request("DELETE", href, headers={"If-Match": etag}).status in (
                200,
                204,
            )
        assert dav_server.etags(path) == {}
    for kind, storage in (("ics", "cal"), ("vcf", "cards")):
        name = paths[kind].rstrip("/").rsplit("/", 1)[1]
        assert main(["--config", str(cfg), "archive", "restore", str(archive),
                     "--to", storage, "--collection", name]) == 0  # fmt: skip
        assert server_state(dav_server, paths[kind], kind) == before[kind]
    assert "30 added, 0 updated" in capsys.readouterr().out
