"""HTTP proxies: the ``proxy`` key of a storage, or the environment.

``proxy = "http://[user:password@]host[:port]"`` sends every request of the storage
through that proxy; ``proxy = ""`` sends none through a proxy, whatever the environment
says. Without the key, the environment decides, as for curl and Python's urllib:
``https_proxy`` (``HTTPS_PROXY``) for ``https://`` servers, ``http_proxy`` for
``http://`` ones (``all_proxy`` for both when those are unset), and ``no_proxy`` lists
the hosts reached directly (``urllib.request.getproxies`` and ``proxy_bypass`` read them;
``urllib.request`` is imported only when such a variable is set, as it costs a few ms).

``https://`` servers are reached through a ``CONNECT`` tunnel (the proxy sees the host
name, nothing of the requests); ``http://`` ones by sending the request to the proxy.
Credentials in the proxy URL go to the proxy only, as ``Proxy-Authorization: Basic``; the
URL is shown without them (:attr:`Proxy.shown`).
"""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit


class ProxyURLError(ValueError):
    """A proxy URL pimsync cannot use; the message never repeats its credentials."""


class Proxy:
    """A proxy: where it is, ``authorization`` (``Basic ...`` for the proxy, or None),
    ``shown`` (its URL without credentials, for messages), ``source`` (the config key or
    the environment variable it came from)."""

    __slots__ = ("authorization", "host", "port", "shown", "source")

    def __init__(
        self, host: str, port: int, authorization: str | None, shown: str, source: str
    ) -> None:
        self.host, self.port, self.authorization = host, port, authorization
        self.shown, self.source = shown, source

    def __repr__(self) -> str:
        return f"Proxy({self.shown!r}, from {self.source})"


def without_credentials(url: str) -> str:
    """A proxy URL with any ``user:password@`` cut out (for messages)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    authority, slash, path = rest.partition("/")
    if "@" in authority:
        authority = "…@" + authority.rsplit("@", 1)[1]
    return (f"{scheme}://" if sep else "") + authority + slash + path


def parse_proxy(url: str, source: str) -> Proxy:
    """A proxy from its URL; ProxyURLError says what is wrong (and what is allowed)."""
    text = url.strip()
    if "://" not in text:
        text = "http://" + text  # as curl does: "proxy.example:3128"
    shown = without_credentials(text)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ProxyURLError(f"{shown!r} has a port that is not a number") from None
    scheme = parts.scheme.lower()
    if scheme != "http":
        raise ProxyURLError(
            f"{shown!r}: pimsync speaks to HTTP proxies only; use a URL like "
            '"http://proxy.example:3128" (an https:// server is reached through it by CONNECT)'
        )
    if not parts.hostname:
        raise ProxyURLError(f"{shown!r} has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ProxyURLError(f"{shown!r}: a proxy URL has no path; use http://HOST:PORT")
    authorization = None
    if parts.username is not None or parts.password is not None:
        user = unquote(parts.username or "")
        password = unquote(parts.password or "")
        import base64

        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        authorization = f"Basic {token}"
    host = parts.hostname
    return Proxy(host, port or 80, authorization, shown, source)


def _environment_has_proxy() -> bool:
    return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ)


class ProxyChooser:
    """Which proxy (if any) a request to a server goes through.

    ``configured``: the storage's ``proxy`` value (a Proxy, or None for ``proxy = ""``),
    or the string ``"environment"`` (no ``proxy`` key)."""

    def __init__(self, configured: Proxy | None | str = "environment") -> None:
        self._configured = configured
        self._env: dict[str, str] | None = None
        self._parsed: dict[str, Proxy | ProxyURLError] = {}

    @property
    def from_environment(self) -> bool:
        return self._configured == "environment"

    def for_server(self, scheme: str, host: str, port: int | None) -> Proxy | None:
        """The proxy for a server (None: connect directly). Raises ProxyURLError for an
        environment variable that names no usable proxy."""
        if isinstance(self._configured, Proxy) or self._configured is None:
            return self._configured
        if not _environment_has_proxy():
            return None
        import urllib.request  # only when a proxy variable is set

        if self._env is None:
            self._env = urllib.request.getproxies()
        env = self._env
        name = scheme if scheme in env else "all" if "all" in env else None
        if name is None:
            return None
        where = f"{host}:{port}" if port else host
        if urllib.request.proxy_bypass(where):
            return None
        got = self._parsed.get(name)
        if got is None:
            try:
                got = parse_proxy(env[name], f"${name}_proxy")
            except ProxyURLError as exc:
                got = ProxyURLError(f"the environment variable ${name}_proxy: {exc}")
            self._parsed[name] = got
        if isinstance(got, ProxyURLError):
            raise got
        return got


__all__ = ["Proxy", "ProxyChooser", "ProxyURLError", "parse_proxy", "without_credentials"]
