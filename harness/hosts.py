"""Host names as the network sees them, and the one guard every request passes.

A host is read once, the way a resolver and httpx will read it, before anything is decided by
it: percent-escapes decoded, Unicode mapped by IDNA/UTS-46 (so U+FF0E, U+3002 and U+FF61 are
dots and full-width letters are letters), lower case, no root dot, IPv4 in any of the forms
``inet_aton`` accepts (``127.1``, ``0x7f.0.0.1``, ``2130706433``) written as four decimals,
IPv6 compressed. A URL is rewritten with that host, so what was checked is what is sent.

``WirePolicy`` is the guard at the wire: a write to Harbor's production hosts needs the loudly
named opt-in, and plain ``http://`` to a machine other than this one needs
``HARBOR_ALLOW_INSECURE_HTTP``. Every HTTP client of the harness (the API client, the contract
suite, the Locust users, cleanup, the control-plane probes) asks it before each request,
whatever the target was called.
"""

from __future__ import annotations

import enum
import ipaddress
import re
import socket
import urllib.parse
from dataclasses import dataclass
from typing import Final

import idna

from harness.errors import UsageError

__all__ = [
    "HARBOR_DOMAIN",
    "INSECURE_HTTP_VARIABLE",
    "PRODUCTION_WRITES_FLAG",
    "HarborHost",
    "HostError",
    "RequestRefused",
    "WirePolicy",
    "canonical_host",
    "canonical_url",
    "harbor_host",
    "is_loopback_host",
    "trusts_env_proxies",
    "url_host",
]

#: Harbor's domain: every host under it that is not the sandbox's or development's is production's.
HARBOR_DOMAIN: Final = "harborlockers.com"
_SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: Requests that change nothing on Harbor's side although they are POSTs: a bearer token, a token
#: check, an SDK token, the legacy logins [S, reference 2].
_READ_ONLY_POSTS: Final = (
    "/realms/harbor/protocol/openid-connect/token",
    "/api/v1/login/test-token",
    "/api/v1/login/authorize",
    "/api/v1/login/access-token",
    "/sdk/v1/login/access-token",
)
_ASCII_LABEL = re.compile(r"[a-z0-9_-]+")
# The IPv4 forms glibc's inet_aton (and so getaddrinfo) takes: 1 to 4 parts, decimal, octal or hex.
_IPV4_PART = r"(?:0x[0-9a-f]*|[0-9]+)"
_IPV4_FORMS = re.compile(rf"{_IPV4_PART}(?:\.{_IPV4_PART}){{0,3}}")
#: The opt-in for plain ``http://`` to a host other than loopback (the secret then travels in clear).
INSECURE_HTTP_VARIABLE: Final = "HARBOR_ALLOW_INSECURE_HTTP"
#: The loudly named opt-in for writes against production.
PRODUCTION_WRITES_FLAG: Final = "--i-understand-this-writes-to-production"


class HostError(ValueError):
    """A host or URL that no resolver would read as one host; the message says why."""


class RequestRefused(UsageError):
    """The guard refused a request before it left (a production write, a secret in clear): exit 2."""


class HarborHost(enum.StrEnum):
    """Which of Harbor's environments a host belongs to [S, reference 1]."""

    PRODUCTION = "production"
    SANDBOX = "sandbox"
    DEVELOPMENT = "development"


def canonical_host(raw: str) -> str:
    """``raw`` as the network reads it (see the module's docstring), or ``HostError``."""
    text = urllib.parse.unquote(raw.strip())
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    if not text:
        raise HostError("the host is empty")
    if ":" in text:
        try:
            address = ipaddress.IPv6Address(text.split("%", 1)[0])
        except ValueError:
            raise HostError(f"{raw!r} is not an IPv6 address") from None
        return address.compressed
    if text.isascii():
        name = text.lower()
    else:
        try:
            name = idna.encode(text, uts46=True, std3_rules=False, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise HostError(f"{raw!r} is not a host name: {exc}") from None
    name = name.rstrip(".")
    if _IPV4_FORMS.fullmatch(name):
        try:
            return socket.inet_ntoa(socket.inet_aton(name))
        except OSError:
            raise HostError(f"{raw!r} is not an IPv4 address") from None
    labels = name.split(".")
    if not all(_ASCII_LABEL.fullmatch(label) for label in labels):
        raise HostError(f"{raw!r} is not a host name")
    return name


def url_host(url: str) -> str:
    """The canonical host of an absolute URL, or ``HostError``."""
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:
        raise HostError(f"{url!r} is not a URL: {exc}") from None
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        host = host[: host.find("]") + 1]
    else:
        host = host.rpartition(":")[0] if host.count(":") == 1 else host
    return canonical_host(host)


def canonical_url(url: str) -> str:
    """``url`` with its host in canonical form (scheme lower case, port kept), or ``HostError``.

    User info is dropped from the answer only if there is none; a URL that carries any is refused
    by the callers, since ``user@host`` is a classic way to hide the real host.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise HostError(f"{url!r} is not a valid URL: {exc}") from None
    host = canonical_host(url_host(url))
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if port is None else f"{shown}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urllib.parse.urlunsplit((parts.scheme.lower(), netloc, parts.path, parts.query, parts.fragment))


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this machine: ``localhost``, ``127.0.0.0/8`` in any IPv4 form, or ``::1``
    (also IPv4-mapped). Other names under ``.localhost`` are not: a resolver may ask DNS for them."""
    try:
        name = canonical_host(host)
    except HostError:
        return False
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


def trusts_env_proxies(*urls: str | None) -> bool:
    """Whether an HTTP client for ``urls`` may take a proxy from the environment (``HTTP_PROXY`` and
    kin): not when one is this machine's, where plain http is allowed only because nothing leaves it
    (a proxy would carry the client secret, in clear, to wherever it runs)."""
    for url in urls:
        if not url:
            continue
        try:
            if is_loopback_host(url_host(url)):
                return False
        except HostError:
            continue  # the guard at the wire refuses it before anything is sent
    return True


def harbor_host(host: str) -> HarborHost | None:
    """Harbor's environment that ``host`` (canonical or not) belongs to; ``None`` for other hosts.

    Any host under ``harborlockers.com`` that is not the sandbox's or development's counts as
    production: the guard errs towards refusing."""
    try:
        name = canonical_host(host)
    except HostError:
        return None
    if name != HARBOR_DOMAIN and not name.endswith("." + HARBOR_DOMAIN):
        return None
    if name.endswith(".sandbox." + HARBOR_DOMAIN):
        return HarborHost.SANDBOX
    if name.endswith(".dev." + HARBOR_DOMAIN):
        return HarborHost.DEVELOPMENT
    return HarborHost.PRODUCTION


@dataclass(frozen=True, slots=True)
class WirePolicy:
    """What may leave this process: asked before every request, with the request's own URL."""

    allow_production_writes: bool = False
    allow_insecure_http: bool = False

    def check(self, method: str, url: str) -> None:
        """Pass, or raise ``RequestRefused`` saying what to change."""
        try:
            host = url_host(url)
        except HostError as exc:
            raise RequestRefused(f"refusing {method} {url}: {exc}") from None
        scheme = urllib.parse.urlsplit(url.strip()).scheme.lower()
        harbor = harbor_host(host)
        if scheme != "https" and not is_loopback_host(host):
            if harbor is not None:
                raise RequestRefused(f"refusing {method} to Harbor's {harbor.value} host {host} over plain http")
            if not self.allow_insecure_http:
                raise RequestRefused(
                    f"refusing {method} {scheme}://{host}: plain http to another machine sends the client secret "
                    f"and tokens in clear; use https://, or set {INSECURE_HTTP_VARIABLE}=1 if this network is yours"
                )
        if harbor is HarborHost.PRODUCTION and not self.allow_production_writes and _writes(method, url):
            raise RequestRefused(
                f"refusing {method} {urllib.parse.urlsplit(url).path} on Harbor's production host {host}: "
                f"writes to production need {PRODUCTION_WRITES_FLAG}"
            )


def _writes(method: str, url: str) -> bool:
    method = method.upper()
    if method in _SAFE_METHODS:
        return False
    path = urllib.parse.unquote(urllib.parse.urlsplit(url.strip()).path).rstrip("/")
    return not (method == "POST" and path in _READ_ONLY_POSTS)
