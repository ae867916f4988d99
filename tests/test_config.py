"""Tests for pimsync.config: finding, loading and checking the config file."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from pimsync.config import (
    EXAMPLE_CONFIG,
    Config,
    ExportConfig,
    GeneralConfig,
    KeepPolicy,
    PairConfig,
    StorageConfig,
    find_config,
    load_config,
)
from pimsync.errors import ConfigError

CAL = """
[storages.laptop]
type = "vdir"
path = "/data/cal"
fileext = ".ics"

[storages.server]
type = "caldav"
url = "https://dav.example.org/"
"""

PAIR = """
[pairs.calendars]
a = "laptop"
b = "server"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text), encoding="utf-8")
    return p


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    env = {"HOME": str(tmp_path / "home"), **(env or {})}
    return load_config(write(tmp_path, text), env=env)


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    msg = str(info.value)
    assert msg.startswith(str(tmp_path / "config.toml")), msg
    return msg


# --------------------------------------------------------------------------- valid configs


def test_full_valid_config(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("")
    cfg = load(
        tmp_path,
        """
        [general]
        state_dir = "/var/lib/pimsync"
        lock_timeout = 2.5

        [storages.laptop]
        type = "vdir"
        path = "/data/cal"
        fileext = ".ics"

        [storages.phone]
        type = "file"
        path = "/phone/{collection}.ics"
        read_only = true

        [storages.server]
        type = "caldav"
        url = "https://dav.example.org/"
        username = "alice"
        password_command = ["pass", "show", "dav"]
        verify = "ca.pem"
        timeout = 12

        [storages.cards]
        type = "carddav"
        url = "http://localhost:5232/"
        keyring = "dav-service"
        verify = false

        [storages.local_cards]
        type = "vdir"
        path = "/data/cards"
        fileext = ".vcard"

        [storages.holidays]
        type = "webcal"
        url = "webcal://example.org/holidays.ics"

        [pairs.calendars]
        a = "laptop"
        b = "server"
        collections = ["home", "work"]
        conflict = "a wins"
        conflict_fallback = "keep both"

        [pairs.contacts]
        a = "local_cards"
        b = "cards"
        collections = "from b"

        [pairs.phone-cal]
        a = "phone"
        b = "laptop"
        """,
    )
    assert cfg.path == tmp_path / "config.toml"
    assert cfg.general == GeneralConfig(state_dir=Path("/var/lib/pimsync"), lock_timeout=2.5)
    assert list(cfg.storages) == [
        "laptop",
        "phone",
        "server",
        "cards",
        "local_cards",
        "holidays",
    ]
    assert cfg.storages["laptop"] == StorageConfig(
        name="laptop", type="vdir", path=Path("/data/cal"), fileext=".ics"
    )
    phone = cfg.storages["phone"]
    assert phone.path == Path("/phone/{collection}.ics")
    assert phone.read_only is True and phone.kind == "ics"
    server = cfg.storages["server"]
    assert server.url == "https://dav.example.org/"
    assert server.username == "alice"
    assert server.password is None and server.keyring is None
    assert server.password_command == ("pass", "show", "dav")
    assert server.verify == tmp_path / "ca.pem"
    assert server.timeout == 12.0 and isinstance(server.timeout, float)
    assert server.read_only is False
    cards = cfg.storages["cards"]
    assert cards.keyring == "dav-service" and cards.verify is False and cards.timeout == 30.0
    assert cards.kind == "vcf"
    assert cfg.storages["local_cards"].kind == "vcf"
    holidays = cfg.storages["holidays"]
    assert holidays.read_only is True and holidays.kind == "ics"
    assert holidays.url == "https://example.org/holidays.ics"
    assert cfg.pairs["calendars"] == PairConfig(
        name="calendars",
        a="laptop",
        b="server",
        collections=("home", "work"),
        conflict="a wins",
        conflict_fallback="keep both",
    )
    assert cfg.pairs["contacts"].collections == "from b"
    assert cfg.pairs["phone-cal"] == PairConfig(
        name="phone-cal",
        a="phone",
        b="laptop",
        collections="all",
        conflict="merge",
        conflict_fallback="newest",
    )


def test_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, CAL + PAIR, env={"XDG_DATA_HOME": str(tmp_path / "xdg-data")})
    assert cfg.general.state_dir == tmp_path / "xdg-data" / "pimsync"
    assert cfg.general.lock_timeout == 10.0
    server = cfg.storages["server"]
    assert server.verify is True and server.timeout == 30.0 and server.read_only is False
    assert cfg.exports == {}


def test_default_state_dir_uses_platformdirs(tmp_path: Path, monkeypatch) -> None:
    import platformdirs

    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    cfg = load(tmp_path, CAL + PAIR)
    assert cfg.general.state_dir == Path(platformdirs.user_data_dir("pimsync"))


def test_kind_of_each_type() -> None:
    assert StorageConfig("a", "vdir", path=Path("/x"), fileext=".ics").kind == "ics"
    assert StorageConfig("a", "vdir", path=Path("/x"), fileext=".vcf").kind == "vcf"
    assert StorageConfig("a", "file", path=Path("/x/{collection}.vcard")).kind == "vcf"
    assert StorageConfig("a", "file", path=Path("/x/all.ICS")).kind == "ics"
    assert StorageConfig("a", "caldav", url="https://x/").kind == "ics"
    assert StorageConfig("a", "webcal", url="https://x/").kind == "ics"
    assert StorageConfig("a", "carddav", url="https://x/").kind == "vcf"


def test_example_config_loads(tmp_path: Path) -> None:
    cfg = load(tmp_path, EXAMPLE_CONFIG)
    assert len(cfg.pairs) == 1
    kinds = {s.type for s in cfg.storages.values()}
    assert kinds <= {"vdir", "file"} and len(cfg.storages) == 2
    pair = next(iter(cfg.pairs.values()))
    assert {pair.a, pair.b} == set(cfg.storages)


def test_password_never_in_repr(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        [storages.laptop]
        type = "vdir"
        path = "/data/cal"
        fileext = ".ics"

        [storages.server]
        type = "caldav"
        url = "https://dav.example.org/"
        username = "alice"
        password = "s3cret-Pa55"
        """
        + PAIR,
    )
    server = cfg.storages["server"]
    assert server.password == "s3cret-Pa55"
    for text in (repr(server), str(server), repr(cfg), str(cfg), repr(cfg.storages)):
        assert "s3cret-Pa55" not in text
    assert "password='***'" in repr(server)
    assert "username='alice'" in repr(server)
    assert "password=None" in repr(cfg.storages["laptop"])


# --------------------------------------------------------------------------- paths


def test_relative_path_is_relative_to_config_dir(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    text = CAL.replace('"/data/cal"', '"cals"') + PAIR
    cfg = load_config(write(conf_dir, text), env={"HOME": "/home/u"})
    assert cfg.storages["laptop"].path == conf_dir / "cals"
    assert cfg.storages["laptop"].path.is_absolute()


def test_tilde_and_env_vars_expand(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
        [general]
        state_dir = "${DATA}/state"

        [storages.laptop]
        type = "vdir"
        path = "~/.calendars"
        fileext = ".ics"

        [storages.phone]
        type = "file"
        path = "$PHONE/{collection}.ics"

        [pairs.p]
        a = "laptop"
        b = "phone"
        """,
        env={"HOME": "/home/alice", "DATA": "/srv/data", "PHONE": "/mnt/phone"},
    )
    assert cfg.general.state_dir == Path("/srv/data/state")
    assert cfg.storages["laptop"].path == Path("/home/alice/.calendars")
    assert cfg.storages["phone"].path == Path("/mnt/phone/{collection}.ics")


def test_unset_env_var_in_path(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('"/data/cal"', '"$NOPE/cal"') + PAIR)
    assert "storages.laptop.path" in msg and "$NOPE" in msg and "not set" in msg


# --------------------------------------------------------------------------- find_config


def test_find_config_prefers_cli(tmp_path: Path) -> None:
    cli = write(tmp_path, "", "cli.toml")
    envp = write(tmp_path, "", "env.toml")
    env = {"PIMSYNC_CONFIG": str(envp), "XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nowhere"}
    assert find_config(str(cli), env) == cli


def test_find_config_env_then_xdg_then_home(tmp_path: Path) -> None:
    envp = write(tmp_path, "", "env.toml")
    xdg = tmp_path / "xdg"
    (xdg / "pimsync").mkdir(parents=True)
    xdg_file = write(xdg / "pimsync", "", "config.toml")
    home = tmp_path / "home"
    (home / ".config" / "pimsync").mkdir(parents=True)
    home_file = write(home / ".config" / "pimsync", "", "config.toml")

    env = {"PIMSYNC_CONFIG": str(envp), "XDG_CONFIG_HOME": str(xdg), "HOME": str(home)}
    assert find_config(None, env) == envp
    del env["PIMSYNC_CONFIG"]
    assert find_config(None, env) == xdg_file
    del env["XDG_CONFIG_HOME"]
    assert find_config(None, env) == home_file


def test_find_config_not_found_lists_places(tmp_path: Path) -> None:
    env = {"HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError) as info:
        find_config(None, env)
    msg = str(info.value)
    expected = tmp_path / "home" / ".config" / "pimsync" / "config.toml"
    places = ["--config: not given", "$PIMSYNC_CONFIG: not set", "$XDG_CONFIG_HOME"]
    positions = [msg.index(p) for p in places]
    assert positions == sorted(positions)
    assert "$XDG_CONFIG_HOME not set" in msg
    assert str(expected) in msg and "does not exist" in msg
    assert "[pairs." in msg and 'type = "vdir"' in msg and 'type = "file"' in msg


def test_find_config_missing_env_file_is_an_error(tmp_path: Path) -> None:
    xdg = tmp_path / "xdg"
    (xdg / "pimsync").mkdir(parents=True)
    write(xdg / "pimsync", "", "config.toml")
    missing = tmp_path / "missing.toml"
    env = {"PIMSYNC_CONFIG": str(missing), "XDG_CONFIG_HOME": str(xdg)}
    with pytest.raises(ConfigError) as info:
        find_config(None, env)
    msg = str(info.value)
    assert f"$PIMSYNC_CONFIG={missing}" in msg and "does not exist" in msg


def test_find_config_missing_cli_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        find_config(str(missing), {"HOME": str(tmp_path)})
    assert f"--config {missing}" in str(info.value)


# --------------------------------------------------------------------------- file-level errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml")
    assert str(tmp_path / "config.toml") in str(info.value)


def test_toml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    msg = error(tmp_path, "[general]\nlock_timeout = 1\nstate_dir = \n")
    assert msg.startswith(f"{tmp_path / 'config.toml'}:3: invalid TOML")


def test_toml_syntax_error_at_end(tmp_path: Path) -> None:
    msg = error(tmp_path, "[general]\nx = [1,")
    assert msg.startswith(f"{tmp_path / 'config.toml'}:2: invalid TOML")


def test_unknown_top_level_table(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + "[options]\nx = 1\n")
    assert "options: unknown top-level key" in msg and "general, storages, pairs, exports" in msg


def test_unknown_general_key(tmp_path: Path) -> None:
    msg = error(tmp_path, "[general]\nstatedir = '/x'\n" + CAL + PAIR)
    assert "general.statedir: unknown key" in msg
    assert "state_dir, lock_timeout" in msg and "did you mean 'state_dir'" in msg


def test_lock_timeout_negative(tmp_path: Path) -> None:
    msg = error(tmp_path, "[general]\nlock_timeout = -1\n" + CAL + PAIR)
    assert "general.lock_timeout" in msg and ">= 0" in msg


def test_lock_timeout_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, "[general]\nlock_timeout = '10'\n" + CAL + PAIR)
    assert "general.lock_timeout: expected a number of seconds, got a string" in msg


def test_no_pairs(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL)
    assert "pairs: no pairs defined (and no exports)" in msg and "[pairs.NAME]" in msg
    assert "[exports.NAME]" in msg


def test_no_pairs_empty_tables(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "[pairs]\n[exports]\n")
    assert "pairs: no pairs defined (and no exports)" in msg


# --------------------------------------------------------------------------- storages


def test_bad_storage_name(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[storages."my cal"]\ntype = "vdir"\n' + PAIR)
    assert "storages.my cal" in msg and "letters A-Z a-z, digits, '_' and '-'" in msg


def test_storage_type_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "[storages.x]\npath = '/x'\n" + PAIR)
    assert "storages.x.type: missing" in msg
    assert '"vdir", "file", "caldav", "carddav", "webcal"' in msg


def test_storage_type_unknown(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "[storages.x]\ntype = 'ftp'\n" + PAIR)
    assert "storages.x.type: 'ftp' is not allowed" in msg
    assert '"vdir", "file", "caldav", "carddav", "webcal"' in msg


def test_storage_not_a_table(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "[storages]\nx = 'vdir'\n" + PAIR)
    assert "storages.x: expected a table" in msg


def test_unknown_storage_key(tmp_path: Path) -> None:
    msg = error(
        tmp_path, CAL.replace('fileext = ".ics"', 'fileext = ".ics"\ncolour = "red"') + PAIR
    )
    assert "storages.laptop.colour: unknown key" in msg
    assert 'for type "vdir": type, path, fileext, read_only' in msg


def test_key_of_another_type(tmp_path: Path) -> None:
    text = CAL + PAIR + '[storages.f]\ntype = "file"\npath = "/x/a.ics"\nfileext = ".ics"\n'
    msg = error(tmp_path, text)
    assert 'storages.f.fileext is not used by type "file"' in msg
    assert "type, path, read_only" in msg


def test_vdir_path_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('path = "/data/cal"', "") + PAIR)
    assert "storages.laptop.path: missing" in msg and "directory" in msg


def test_vdir_fileext_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('fileext = ".ics"', "") + PAIR)
    assert "storages.laptop.fileext: missing" in msg and '".ics" or ".vcf"' in msg


def test_vdir_fileext_not_allowed(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('fileext = ".ics"', 'fileext = "ics"') + PAIR)
    assert "storages.laptop.fileext: 'ics' is not allowed" in msg
    assert '".ics", ".vcf", ".vcard"' in msg


def test_vdir_path_with_collection_placeholder(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('"/data/cal"', '"/data/{collection}"') + PAIR)
    assert "storages.laptop.path" in msg and 'only for type "file"' in msg


def test_path_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('"/data/cal"', '["/data/cal"]') + PAIR)
    assert "storages.laptop.path: expected a string, got a list" in msg


FILE_PAIR = """
[storages.laptop]
type = "vdir"
path = "/data/cal"
fileext = ".ics"

[storages.f]
type = "file"
path = "PATH"

[pairs.p]
a = "laptop"
b = "f"
"""


def test_file_path_required(tmp_path: Path) -> None:
    msg = error(tmp_path, FILE_PAIR.replace('path = "PATH"', ""))
    assert "storages.f.path: missing" in msg and ".ics or .vcf" in msg


def test_file_path_bad_extension(tmp_path: Path) -> None:
    msg = error(tmp_path, FILE_PAIR.replace("PATH", "/x/{collection}.txt"))
    assert "storages.f.path" in msg and ".ics, .vcf or .vcard" in msg


def test_file_path_collection_twice(tmp_path: Path) -> None:
    msg = error(tmp_path, FILE_PAIR.replace("PATH", "/x/{collection}-{collection}.ics"))
    assert "storages.f.path: {collection} may appear at most once" in msg


def test_file_path_collection_in_directory(tmp_path: Path) -> None:
    msg = error(tmp_path, FILE_PAIR.replace("PATH", "/x/{collection}/all.ics"))
    assert "storages.f.path: {collection} is allowed only in the file name" in msg


def test_file_path_unknown_placeholder(tmp_path: Path) -> None:
    msg = error(tmp_path, FILE_PAIR.replace("PATH", "/x/{collections}.ics"))
    assert "storages.f.path: unknown placeholder {collections}" in msg


def test_file_single_file_without_placeholder(tmp_path: Path) -> None:
    cfg = load(tmp_path, FILE_PAIR.replace("PATH", "cal.ics"))
    assert cfg.storages["f"].path == tmp_path / "cal.ics"


def test_dav_url_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace('url = "https://dav.example.org/"', "") + PAIR)
    assert "storages.server.url: missing" in msg and "http:// or https://" in msg


def test_dav_url_scheme(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL.replace("https://dav", "ftp://dav") + PAIR)
    assert "storages.server.url: 'ftp://dav.example.org/' is not allowed" in msg
    assert '"http://", "https://"' in msg


def test_dav_two_password_sources(tmp_path: Path) -> None:
    text = CAL + 'password = "x"\nkeyring = "svc"\n' + PAIR
    msg = error(tmp_path, text)
    assert "storages.server.keyring" in msg
    assert "at most one of password, password_command, keyring" in msg


def test_password_command_must_be_list(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + 'password_command = "pass show dav"\n' + PAIR)
    assert "storages.server.password_command: expected a list of strings" in msg


def test_password_command_not_empty(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "password_command = []\n" + PAIR)
    assert "storages.server.password_command: must be a non-empty list" in msg


def test_password_must_be_string(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "password = 1234\n" + PAIR)
    assert "storages.server.password: expected a string, got an integer" in msg


def test_verify_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "verify = 1\n" + PAIR)
    assert "storages.server.verify: expected true, false or the path of a CA bundle" in msg


def test_timeout_must_be_positive(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + "timeout = 0\n" + PAIR)
    assert "storages.server.timeout: 0 is not allowed" in msg and "> 0" in msg


def test_read_only_must_be_bool(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + 'read_only = "yes"\n' + PAIR)
    assert "storages.server.read_only: expected true or false, got a string" in msg


def test_webcal_read_only_false(tmp_path: Path) -> None:
    text = (
        CAL + PAIR + '[storages.w]\ntype = "webcal"\nurl = "https://x/a.ics"\nread_only = false\n'
    )
    msg = error(tmp_path, text)
    assert "storages.w.read_only: false is not allowed" in msg and "always read-only" in msg


def test_webcal_rejects_credentials(tmp_path: Path) -> None:
    text = CAL + PAIR + '[storages.w]\ntype = "webcal"\nurl = "https://x/a.ics"\nusername = "u"\n'
    msg = error(tmp_path, text)
    assert 'storages.w.username is not used by type "webcal"' in msg


# --------------------------------------------------------------------------- pairs


def test_bad_pair_name(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[pairs."a.b"]\na = "laptop"\nb = "server"\n')
    assert "pairs.a.b" in msg and "not a valid name" in msg


def test_pair_a_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[pairs.p]\nb = "server"\n')
    assert "pairs.p.a: missing" in msg and "laptop, server" in msg


def test_pair_unknown_storage(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[pairs.p]\na = "laptop"\nb = "srv"\n')
    assert "pairs.p.b: no storage named 'srv'" in msg and "laptop, server" in msg


def test_pair_same_storage(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[pairs.p]\na = "laptop"\nb = "laptop"\n')
    assert "pairs.p.b" in msg and "two different storages" in msg


def test_pair_kinds_differ(tmp_path: Path) -> None:
    text = CAL + '[storages.cards]\ntype = "carddav"\nurl = "https://x/"\n'
    msg = error(tmp_path, text + '[pairs.p]\na = "laptop"\nb = "cards"\n')
    assert "pairs.p: storages 'laptop' (ics) and 'cards' (vcf)" in msg


def test_pair_unknown_key(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + 'conflicts = "newest"\n')
    assert "pairs.calendars.conflicts: unknown key" in msg
    assert "a, b, collections, conflict, conflict_fallback" in msg


def test_conflict_not_allowed(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + 'conflict = "winner"\n')
    assert msg == (
        f"{tmp_path / 'config.toml'}: pairs.calendars.conflict: 'winner' is not allowed; "
        'use one of "merge", "a wins", "b wins", "newest", "keep both"'
    )


def test_conflict_merge_is_the_default(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(CAL + PAIR)
    pair = load_config(tmp_path / "config.toml").pairs["calendars"]
    assert (pair.conflict, pair.conflict_fallback) == ("merge", "newest")


def test_conflict_fallback_not_allowed(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + 'conflict_fallback = "merge"\n')
    assert "pairs.calendars.conflict_fallback: 'merge' is not allowed" in msg
    assert '"a wins", "b wins", "newest", "keep both"' in msg


def test_conflict_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + "conflict = true\n")
    assert "pairs.calendars.conflict: expected a string, got a boolean (true)" in msg
    assert '"newest"' in msg


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"some"', "'some' is not allowed"),
        ("[]", "the list is empty"),
        ("3", "expected a string or a list, got an integer"),
        ('["home", 1]', "expected collection names (strings), got an integer"),
        ('["a/b"]', "'a/b' is not a valid collection name"),
        ('[".."]', "'..' is not a valid collection name"),
        ('[""]', "'' is not a valid collection name"),
        ('["home", "home"]', "'home' is listed twice"),
    ],
)
def test_collections_invalid(tmp_path: Path, value: str, fragment: str) -> None:
    msg = error(tmp_path, CAL + PAIR + f"collections = {value}\n")
    assert "pairs.calendars.collections" in msg and fragment in msg
    if "not allowed" in fragment or "empty" in fragment:
        assert '"all", "from a", "from b"' in msg


def test_collections_from_a(tmp_path: Path) -> None:
    cfg = load(tmp_path, CAL + PAIR + 'collections = "from a"\n')
    assert cfg.pairs["calendars"].collections == "from a"


def test_dav_connections_bounds(tmp_path):
    from pimsync.config import ConfigError, load_config

    def cfg(value: str):
        path = tmp_path / "c.toml"
        path.write_text(
            "[storages.a]\ntype='vdir'\npath='a'\nfileext='.ics'\n"
            f"[storages.s]\ntype='caldav'\nurl='https://x.example/'\nconnections={value}\n"
            "[pairs.p]\na='a'\nb='s'\n"
        )
        return load_config(path)

    assert cfg("8").storages["s"].connections == 8
    for bad in ("0", "33", "2.5", "true", "'4'"):
        with pytest.raises(ConfigError, match="storages.s.connections"):
            cfg(bad)


# --------------------------------------------------------------------------- exports

EXPORT = """
[exports.nightly]
storages = ["server", "laptop"]
path = "/backups/pim"
"""


def test_export_full(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        CAL
        + PAIR
        + """
        [exports.nightly]
        storages = ["server", "laptop"]
        path = "~/backups/pim"
        every = "1d12h"
        keep = { last = 7, daily = 30, weekly = 8, monthly = 12 }
        format = "zip"
        """,
        env={"HOME": "/home/alice"},
    )
    assert cfg.exports == {
        "nightly": ExportConfig(
            name="nightly",
            storages=("server", "laptop"),
            path=Path("/home/alice/backups/pim"),
            every=timedelta(days=1, hours=12),
            keep=KeepPolicy(last=7, daily=30, weekly=8, monthly=12),
            format="zip",
        )
    }
    assert list(cfg.pairs) == ["calendars"]


def test_export_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, CAL + PAIR + EXPORT)
    export = cfg.exports["nightly"]
    assert export == ExportConfig(
        name="nightly", storages=("server", "laptop"), path=Path("/backups/pim")
    )
    assert export.every is None and export.keep is None and export.format == "tar.gz"


def test_several_exports_keep_order(tmp_path: Path) -> None:
    text = CAL + PAIR + EXPORT + '[exports.weekly-2]\nstorages = ["laptop"]\npath = "/b"\n'
    cfg = load(tmp_path, text)
    assert list(cfg.exports) == ["nightly", "weekly-2"]
    assert cfg.exports["weekly-2"].storages == ("laptop",)


def test_exports_without_pairs(tmp_path: Path) -> None:
    cfg = load(tmp_path, CAL + EXPORT)
    assert cfg.pairs == {} and list(cfg.exports) == ["nightly"]


def test_export_storages_of_any_kind(tmp_path: Path) -> None:
    text = (
        CAL
        + '[storages.cards]\ntype = "carddav"\nurl = "https://x/"\n'
        + '[storages.w]\ntype = "webcal"\nurl = "https://x/a.ics"\n'
        + '[exports.all]\nstorages = ["laptop", "cards", "w"]\npath = "/b"\n'
    )
    assert load(tmp_path, text).exports["all"].storages == ("laptop", "cards", "w")


def test_export_path_relative_and_vars(tmp_path: Path) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    cfg = load_config(write(conf_dir, CAL + EXPORT.replace("/backups/pim", "archives")), env={})
    assert cfg.exports["nightly"].path == conf_dir / "archives"
    cfg = load(tmp_path, CAL + EXPORT.replace("/backups/pim", "${BK}/pim"), env={"BK": "/mnt"})
    assert cfg.exports["nightly"].path == Path("/mnt/pim")


def test_export_path_unset_var(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT.replace("/backups/pim", "$NOPE/pim"))
    assert "exports.nightly.path: environment variable $NOPE is not set" in msg


def test_export_path_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[exports.nightly]\nstorages = ["laptop"]\n')
    assert "exports.nightly.path: missing" in msg and "directory" in msg


def test_export_path_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT.replace('"/backups/pim"', "1"))
    assert "exports.nightly.path: expected a string, got an integer" in msg


def test_export_path_collection_placeholder(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT.replace("/backups/pim", "/b/{collection}"))
    assert "exports.nightly.path: {collection} is only for storages of type" in msg


def test_bad_export_name(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT.replace("[exports.nightly]", '[exports."every night"]'))
    assert "exports.every night: 'every night' is not a valid name" in msg
    assert "letters A-Z a-z, digits, '_' and '-'" in msg


def test_exports_not_a_table(tmp_path: Path) -> None:
    msg = error(tmp_path, "exports = 1\n" + CAL + PAIR)
    assert "exports: expected a table ([exports]), got an integer" in msg


def test_export_not_a_table(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + PAIR + '[exports]\nnightly = "server"\n')
    assert "exports.nightly: expected a table" in msg


def test_export_unknown_key(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT + 'evry = "1d"\n')
    assert "exports.nightly.evry: unknown key (did you mean 'every'?)" in msg
    assert "storages, path, every, keep, format" in msg


def test_export_storages_required(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + '[exports.nightly]\npath = "/b"\n')
    assert "exports.nightly.storages: missing" in msg and "laptop, server" in msg


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ('"server"', "expected a list of storage names"),
        ("[]", "the list is empty; name one or more of the storages: laptop, server"),
        ('["server", 1]', "expected storage names (strings), got an integer (1)"),
        ('["server", "srv"]', "no storage named 'srv'; defined storages: laptop, server"),
        ('["server", "laptop", "server"]', "'server' is listed twice"),
    ],
)
def test_export_storages_invalid(tmp_path: Path, value: str, fragment: str) -> None:
    msg = error(tmp_path, CAL + PAIR + f"[exports.nightly]\nstorages = {value}\npath = '/b'\n")
    assert f"exports.nightly.storages: {fragment}" in msg


def test_export_storages_none_defined(tmp_path: Path) -> None:
    msg = error(tmp_path, '[exports.nightly]\nstorages = ["x"]\npath = "/b"\n')
    assert "exports.nightly.storages: no storage named 'x'; defined storages: (none)" in msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"1m"', timedelta(minutes=1)),
        ('"45m"', timedelta(minutes=45)),
        ('"6h"', timedelta(hours=6)),
        ('"1d"', timedelta(days=1)),
        ('"1w"', timedelta(weeks=1)),
        ('"1d12h"', timedelta(hours=36)),
        ('"2w3d"', timedelta(days=17)),
    ],
)
def test_export_every(tmp_path: Path, value: str, expected: timedelta) -> None:
    cfg = load(tmp_path, CAL + EXPORT + f"every = {value}\n")
    assert cfg.exports["nightly"].every == expected


@pytest.mark.parametrize(
    "value",
    ['"0d"', '"0m"', '"1"', '"1s"', '"1 d"', '"1D"', '""', '"1d1d"', '"1.5h"', '"-1d"', '"daily"'],
)
def test_export_every_invalid(tmp_path: Path, value: str) -> None:
    msg = error(tmp_path, CAL + EXPORT + f"every = {value}\n")
    assert "exports.nightly.every: " in msg
    assert '"30m", "6h", "1d", "2w" or "1d12h"' in msg


def test_export_every_zero_message(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT + 'every = "0d"\n')
    assert "exports.nightly.every: '0d' is not allowed: the interval must be more than 0" in msg


@pytest.mark.parametrize("value", ["1", "86400", "true", '["1d"]', "1.5"])
def test_export_every_wrong_type(tmp_path: Path, value: str) -> None:
    msg = error(tmp_path, CAL + EXPORT + f"every = {value}\n")
    assert 'exports.nightly.every: expected a string like "1d", got ' in msg
    assert '"1d12h"' in msg


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{ last = 7 }", KeepPolicy(last=7)),
        ("{ daily = 30, monthly = 12 }", KeepPolicy(daily=30, monthly=12)),
        ("{ weekly = 0 }", KeepPolicy()),
        ("{}", KeepPolicy()),
        (
            "{ last = 1, daily = 2, weekly = 3, monthly = 4 }",
            KeepPolicy(last=1, daily=2, weekly=3, monthly=4),
        ),
    ],
)
def test_export_keep(tmp_path: Path, value: str, expected: KeepPolicy) -> None:
    cfg = load(tmp_path, CAL + EXPORT + f"keep = {value}\n")
    assert cfg.exports["nightly"].keep == expected


def test_export_keep_as_subtable(tmp_path: Path) -> None:
    cfg = load(tmp_path, CAL + EXPORT + "[exports.nightly.keep]\nlast = 3\nweekly = 2\n")
    assert cfg.exports["nightly"].keep == KeepPolicy(last=3, weekly=2)


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{ last = -1 }", "keep.last: -1 is not allowed; use a whole number >= 0"),
        ("{ daily = 1.5 }", "keep.daily: 1.5 is not allowed; use a whole number >= 0"),
        ("{ weekly = true }", "keep.weekly: true is not allowed; use a whole number >= 0"),
        ('{ monthly = "12" }', "keep.monthly: '12' is not allowed; use a whole number >= 0"),
        ("{ dayly = 3 }", "keep.dayly: unknown key (did you mean 'daily'?)"),
        ("{ yearly = 3 }", "keep.yearly: unknown key; allowed keys: last, daily, weekly, monthly"),
        ("7", "keep: expected a table like { last = 7, daily = 30, weekly = 8, monthly = 12 }"),
        ('"all"', "keep: expected a table like"),
    ],
)
def test_export_keep_invalid(tmp_path: Path, value: str, fragment: str) -> None:
    msg = error(tmp_path, CAL + EXPORT + f"keep = {value}\n")
    assert f"exports.nightly.{fragment}" in msg


@pytest.mark.parametrize("value", ["tar.gz", "zip"])
def test_export_format(tmp_path: Path, value: str) -> None:
    cfg = load(tmp_path, CAL + EXPORT + f'format = "{value}"\n')
    assert cfg.exports["nightly"].format == value


@pytest.mark.parametrize("value", ['"tar"', '"ZIP"', '"tgz"', '".zip"'])
def test_export_format_invalid(tmp_path: Path, value: str) -> None:
    msg = error(tmp_path, CAL + EXPORT + f"format = {value}\n")
    assert msg == (
        f"{tmp_path / 'config.toml'}: exports.nightly.format: {value.replace(chr(34), chr(39))} "
        'is not allowed; use one of "tar.gz", "zip"'
    )


def test_export_format_wrong_type(tmp_path: Path) -> None:
    msg = error(tmp_path, CAL + EXPORT + "format = 1\n")
    assert "exports.nightly.format: expected a string, got an integer (1)" in msg
    assert '"tar.gz", "zip"' in msg


def test_keep_policy_defaults() -> None:
    assert KeepPolicy() == KeepPolicy(last=0, daily=0, weekly=0, monthly=0)


def test_credentials_inside_a_url_are_refused(tmp_path):
    from pimsync.config import ConfigError, load_config

    path = tmp_path / "c.toml"
    path.write_text(
        "[storages.a]\ntype='vdir'\npath='a'\nfileext='.ics'\n"
        "[storages.s]\ntype='caldav'\nurl='https://alice:secret@dav.example/'\n"
        "[pairs.p]\na='a'\nb='s'\n"
    )
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "storages.s.url" in str(err.value) and "secret" not in str(err.value)
