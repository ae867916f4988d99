"""Logging in to a DAV server: HTTP Basic, Digest (RFC 7616) and Bearer tokens.

An :class:`Authenticator` makes the ``Authorization`` header of a request and decides,
from a 401 answer's ``WWW-Authenticate`` challenges, whether the request is worth sending
again. One authenticator serves a storage's client and every client rebased from it; the
client asks it only for requests to the origins it trusts with the credentials (see
``HttpClient.trust``), so nothing here decides where credentials go.

- :class:`PasswordAuth`: Basic is sent with every request (as before: one round trip, and
  Radicale without authentication learns the user from it). A 401 whose challenges offer
  Digest and not Basic switches that origin to Digest (MD5 or SHA-256, with or without
  ``-sess``; ``qop=auth``, or none for an RFC 2069 server); a ``stale=true`` challenge
  (the nonce expired, the password was right) is answered with the new nonce.
  ``scheme="digest"`` never sends Basic (the password never travels in clear, even on
  the first request over ``http://``); ``scheme="basic"`` never answers Digest.
- :class:`BearerAuth`: ``Authorization: Bearer TOKEN`` from a callable (``token_command``);
  on a 401 it is called once more with ``refresh=True`` (the token expired) and the
  request is sent again with the new token.

Nothing here prints or keeps a secret anywhere but in the header it makes.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterable
from urllib.parse import quote

Origin = tuple[str, str, int | None]

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"', re.S)
_TOKEN68 = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_SPACE = re.compile(r"[ \t,]*")
#: at most this many challenges (and parameters of one) are looked at
MAX_CHALLENGES = 16
MAX_PARAMS = 32


def _sha256(data: bytes) -> str:
    import hashlib  # (only when a server asks for Digest)

    return hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    import hashlib

    return hashlib.md5(data, usedforsecurity=False).hexdigest()


#: Digest algorithms pimsync answers, best first
_ALGORITHMS: dict[str, Callable[[bytes], str]] = {"SHA-256": _sha256, "MD5": _md5}


class Challenge:
    """One challenge of a ``WWW-Authenticate`` header: its scheme (lower case) and
    parameters (names lower case, values unquoted). (Plain classes here, not dataclasses:
    this module is imported by every run with a server, and a dataclass costs about a
    millisecond to make.)"""

    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: dict[str, str] | None = None) -> None:
        self.scheme = scheme
        self.params = params if params is not None else {}

    def __repr__(self) -> str:
        return f"Challenge(scheme={self.scheme!r}, params={self.params!r})"


def parse_challenges(values: Iterable[str]) -> list[Challenge]:
    """The challenges of ``WWW-Authenticate`` headers (RFC 7235 section 4.1): several may
    share one header (``Digest realm="a", nonce="b", Basic realm="a"``). What cannot be
    read is skipped; a token68 (``Negotiate abc=``) is kept as the parameter ``""``."""
    out: list[Challenge] = []
    for text in values:
        i, n = 0, len(text)
        current: Challenge | None = None
        while i < n and len(out) <= MAX_CHALLENGES:
            i = _SPACE.match(text, i).end()  # type: ignore[union-attr]
            m = _TOKEN.match(text, i)
            if m is None:
                break
            name, j = m.group(), m.end()
            k = j
            while k < n and text[k] in " \t":
                k += 1
            if current is not None and k < n and text[k] == "=" and not text.startswith("==", k):
                k += 1
                while k < n and text[k] in " \t":
                    k += 1
                q = _QUOTED.match(text, k)
                if q is not None:
                    value, i = re.sub(r"\\(.)", r"\1", q.group(1)), q.end()
                else:
                    v = _TOKEN.match(text, k)
                    value, i = (v.group(), v.end()) if v is not None else ("", k)
                if len(current.params) < MAX_PARAMS:
                    current.params.setdefault(name.lower(), value)
                continue
            current = Challenge(name.lower())
            out.append(current)
            i = j
            t = _TOKEN68.match(text, k) if k > j else None
            if t is not None:
                after = t.end()
                while after < n and text[after] in " \t":
                    after += 1
                if after == n or text[after] == ",":  # a token68, not a parameter
                    current.params[""] = t.group()
                    i = after
    return out[:MAX_CHALLENGES]


def schemes_of(challenges: Iterable[Challenge]) -> list[str]:
    """The schemes offered, in order, each once (lower case)."""
    return list(dict.fromkeys(c.scheme for c in challenges))


# --------------------------------------------------------------------------- Digest


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


class DigestError(Exception):
    """The server's Digest challenge asks for something pimsync cannot answer."""


class _DigestSession:
    """What one origin's Digest challenge says, and the requests answered under it."""

    def __init__(
        self,
        *,
        realm: str,
        nonce: str,
        algorithm: str,  # "MD5", "SHA-256", with "-sess" or not
        qop: str | None,  # "auth", or None (RFC 2069)
        opaque: str | None,
        userhash: bool,
        utf8: bool,
    ) -> None:
        self.realm, self.nonce, self.algorithm, self.qop = realm, nonce, algorithm, qop
        self.opaque, self.userhash, self.utf8 = opaque, userhash, utf8
        self.count = 0
        self.cnonce = os.urandom(16).hex()
        self.ha1: str | None = None  # for -sess: computed once per nonce


def choose_digest(challenges: Iterable[Challenge]) -> _DigestSession:
    """The best Digest challenge pimsync can answer: SHA-256 before MD5, ``qop=auth``.
    Raise DigestError saying why none can be answered."""
    offered: list[tuple[int, _DigestSession]] = []
    why = "the server's Digest challenge has no nonce"
    for c in challenges:
        if c.scheme != "digest" or not c.params.get("nonce"):
            continue
        algorithm = c.params.get("algorithm", "MD5").strip()
        base = algorithm.upper().removesuffix("-SESS")
        if base not in _ALGORITHMS:
            why = f"the server asks for Digest with algorithm {algorithm[:40]!r}"
            continue
        qops = [q.strip().lower() for q in c.params.get("qop", "").split(",") if q.strip()]
        if qops and "auth" not in qops:
            why = f"the server asks for Digest with qop {','.join(qops)[:40]!r} (not 'auth')"
            continue
        session = _DigestSession(
            realm=c.params.get("realm", ""),
            nonce=c.params["nonce"],
            algorithm=base + ("-sess" if algorithm.upper().endswith("-SESS") else ""),
            qop="auth" if qops else None,
            opaque=c.params.get("opaque"),
            userhash=c.params.get("userhash", "").lower() == "true",
            utf8=c.params.get("charset", "").upper() == "UTF-8",
        )
        offered.append((list(_ALGORITHMS).index(base), session))
    if not offered:
        raise DigestError(why)
    return min(offered, key=lambda pair: pair[0])[1]


def digest_header(
    session: _DigestSession,
    method: str,
    uri: str,
    username: str,
    password: str,
    *,
    cnonce: str | None = None,
) -> str:
    """The ``Authorization: Digest ...`` value for one request (RFC 7616 section 3.4);
    counts the request (``nc``). ``cnonce``: for tests with the RFC's examples."""
    h = _ALGORITHMS[session.algorithm.removesuffix("-sess")]
    session.count += 1
    nc = f"{session.count:08x}"
    cnonce = cnonce or session.cnonce
    ha1 = session.ha1
    if ha1 is None:
        ha1 = h(f"{username}:{session.realm}:{password}".encode())
        if session.algorithm.endswith("-sess"):
            ha1 = h(f"{ha1}:{session.nonce}:{cnonce}".encode())
            session.ha1 = ha1
    ha2 = h(f"{method}:{uri}".encode())
    if session.qop:
        response = h(f"{ha1}:{session.nonce}:{nc}:{cnonce}:{session.qop}:{ha2}".encode())
    else:
        response = h(f"{ha1}:{session.nonce}:{ha2}".encode())
    parts: list[str] = []
    if session.userhash:
        parts.append(f"username={_quote(h(f'{username}:{session.realm}'.encode()))}")
    elif username.isascii():
        parts.append(f"username={_quote(username)}")
    else:  # RFC 7616 section 3.4.4
        parts.append(f"username*=UTF-8''{quote(username, safe='')}")
    parts += [
        f"realm={_quote(session.realm)}",
        f"uri={_quote(uri)}",
        f"algorithm={session.algorithm}",
        f"nonce={_quote(session.nonce)}",
    ]
    if session.qop:
        parts += [f"nc={nc}", f"cnonce={_quote(cnonce)}", f"qop={session.qop}"]
    parts.append(f"response={_quote(response)}")
    if session.opaque is not None:
        parts.append(f"opaque={_quote(session.opaque)}")
    if session.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)


# --------------------------------------------------------------------------- authenticators


class Sent:
    """What a request carried: the scheme (None: no credentials) and its header."""

    __slots__ = ("header", "scheme")

    def __init__(self, scheme: str | None, header: str | None = None) -> None:
        self.scheme = scheme
        self.header = header


class Refused(Exception):
    """The server refused the credentials: ``message`` says why (no secret in it)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class Authenticator:
    """Makes ``Authorization`` headers for the trusted origins of one storage."""

    #: what the messages call these credentials
    what = "credentials"

    def header(self, origin: Origin, method: str, target: str) -> Sent:
        raise NotImplementedError

    def challenged(self, origin: Origin, sent: Sent, challenges: list[Challenge]) -> None:
        """A 401 came back for a request that carried ``sent``: return to send it again
        (with a new header), or raise :class:`Refused`."""
        raise NotImplementedError


class PasswordAuth(Authenticator):
    """A username and password: Basic, or Digest when the server asks for it."""

    what = "username or password"

    def __init__(self, username: str, password: str, scheme: str = "auto") -> None:
        if scheme not in ("auto", "basic", "digest"):
            raise ValueError(scheme)
        self._username = username
        self._password = password
        self.scheme = scheme
        import base64

        token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
        self._basic = f"Basic {token}"
        self._lock = threading.Lock()
        #: origin -> its Digest session (an origin that asked for Digest)
        self._digest: dict[Origin, _DigestSession] = {}

    def header(self, origin: Origin, method: str, target: str) -> Sent:
        with self._lock:
            session = self._digest.get(origin)
            if session is not None:
                value = digest_header(session, method, target, self._username, self._password)
                return Sent("digest", value)
        if self.scheme == "digest":
            return Sent(None)  # waits for the server's challenge
        return Sent("basic", self._basic)

    def challenged(self, origin: Origin, sent: Sent, challenges: list[Challenge]) -> None:
        offered = schemes_of(challenges)
        digest = [c for c in challenges if c.scheme == "digest"]
        if sent.scheme == "digest":
            stale = any(c.params.get("stale", "").lower() == "true" for c in digest)
            if stale:  # the nonce expired; the password was right: answer the new one
                self._start_digest(origin, digest, sent)
                return
            raise Refused("the server refused the username or password")
        if self.scheme != "basic" and digest and (sent.scheme is None or "basic" not in offered):
            self._start_digest(origin, digest, sent)
            return
        if sent.scheme == "basic" and offered and "basic" not in offered:
            if digest:  # (auth = "basic")
                raise Refused(
                    'the server asks for Digest authentication, and auth = "basic" never '
                    'answers it: remove auth (or set it to "auto")'
                )
            raise Refused(_unsupported(offered))
        if sent.scheme is None and self.scheme == "digest":
            raise Refused(
                "the server does not ask for Digest authentication"
                + (f" (it offers {', '.join(offered)})" if offered else "")
                + ', and auth = "digest" never sends the password otherwise'
            )
        raise Refused("the server refused the username or password")

    def _start_digest(self, origin: Origin, digest: list[Challenge], sent: Sent) -> None:
        try:
            session = choose_digest(digest)
        except DigestError as exc:
            raise Refused(f"{exc}, which pimsync does not support") from None
        with self._lock:  # a newer challenge replaces the older one (and its count)
            self._digest[origin] = session


def _unsupported(offered: list[str]) -> str:
    names = ", ".join(o.capitalize() if o != "ntlm" else "NTLM" for o in offered[:4])
    return (
        f"the server asks for {names} authentication, which pimsync does not support "
        "(it speaks Basic, Digest and Bearer tokens)"
    )


class BearerAuth(Authenticator):
    """``Authorization: Bearer TOKEN``; ``source(refresh)`` gives the token (``refresh``:
    the last one was refused, get a new one)."""

    what = "access token"

    def __init__(self, source: Callable[[bool], str]) -> None:
        self._source = source
        self._lock = threading.Lock()
        self._token: str | None = None
        self._refreshed_for: str | None = None

    def _current(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._source(False)
            return self._token

    def header(self, origin: Origin, method: str, target: str) -> Sent:
        return Sent("bearer", f"Bearer {self._current()}")

    def challenged(self, origin: Origin, sent: Sent, challenges: list[Challenge]) -> None:
        with self._lock:
            if sent.header != f"Bearer {self._token}":
                return  # another request got a new token meanwhile: try with that one
            if self._refreshed_for == self._token:
                raise Refused(
                    "the server refused the access token, also the new one token_command "
                    "printed when asked again"
                )
            self._token = self._source(True)
            self._refreshed_for = self._token


__all__ = [
    "Authenticator",
    "BearerAuth",
    "Challenge",
    "PasswordAuth",
    "Refused",
    "Sent",
    "choose_digest",
    "digest_header",
    "parse_challenges",
]
