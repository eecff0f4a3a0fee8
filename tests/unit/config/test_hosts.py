"""The one host parser and the guard at the wire, tried as an attacker and a careless user would.

Every spelling below is one that a resolver or httpx reads as Harbor's production host (or as
this machine); each must be seen as such everywhere a target or URL is read, and at the wire.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from harness.api import guard_hooks
from harness.config import Settings, TargetKind, load_settings, parse_target
from harness.errors import UsageError
from harness.hosts import (
    HarborHost,
    HostError,
    RequestRefused,
    WirePolicy,
    canonical_host,
    canonical_url,
    harbor_host,
    is_loopback_host,
    url_host,
)

#: Ways to write Harbor's production API host that the network reads as that very host.
PRODUCTION_SPELLINGS = [
    "https://api.harborlockers\uff0ecom",  # FULLWIDTH FULL STOP: an IDNA dot
    "https://api.harborlockers\u3002com",  # IDEOGRAPHIC FULL STOP
    "https://api.harborlockers\uff61com",  # HALFWIDTH IDEOGRAPHIC FULL STOP
    "https://api\uff0eharborlockers\uff0ecom",
    "https://API.HARBORLOCKERS.COM",
    "https://api.harborlockers.com.",
    "https://api.harborlockers.com.:443",
    "https://\uff41\uff50\uff49.harborlockers.com",  # full-width letters
    "https://\uff21\uff30\uff29\uff0e\uff28\uff21\uff32\uff22\uff2f\uff32\uff2c\uff2f\uff23\uff2b\uff25\uff32\uff33\uff0e\uff23\uff2f\uff2d",
    "https://api%2eharborlockers.com",  # percent-encoded dot
    "https://%61pi.harborlockers.com",  # percent-encoded letter
    "https://api.harbor\u00adlockers.com",  # soft hyphen: ignored by UTS-46
    "https://api.harborlockers.com\u200b",  # zero-width space: ignored
    "https://api.harborlockers.com\u3002",  # an ideographic root dot
    "https://harborlockers.com",
    "https://www.harborlockers.com",
    "https://accounts.harborlockers.com",
]

#: Ways to write the sandbox's API host: they must keep the sandbox's request budget.
SANDBOX_SPELLINGS = [
    "https://api.sandbox.harborlockers\uff0ecom",
    "https://API.SANDBOX.harborlockers.com.",
    "https://api%2esandbox.harborlockers.com",
    "https://api.\uff53andbox.harborlockers.com",
]


@pytest.mark.parametrize("url", PRODUCTION_SPELLINGS)
def test_every_spelling_of_production_is_production(url: str) -> None:
    """The target a spelling of production's host names is production: writes need the opt-in."""
    assert harbor_host(url_host(url)) is HarborHost.PRODUCTION
    if "accounts" in url:
        return  # a token host, not an API target
    settings = load_settings({"target": url}, environ={}, cwd=Path("/nonexistent-dir"))
    assert settings.target.kind is TargetKind.PRODUCTION
    with pytest.raises(UsageError, match="refusing to reserve a locker on production"):
        settings.check_writes_allowed("reserve a locker")


@pytest.mark.parametrize("url", PRODUCTION_SPELLINGS)
def test_the_url_sent_is_the_url_checked(url: str) -> None:
    """A parsed target's URL carries the canonical host, the one httpx then connects to."""
    if "accounts" in url:
        return
    target = parse_target(url)
    assert target.api_url is not None
    assert httpx.URL(target.api_url).host in {"api.harborlockers.com", "harborlockers.com", "www.harborlockers.com"}


@pytest.mark.parametrize("url", SANDBOX_SPELLINGS)
def test_every_spelling_of_the_sandbox_keeps_its_budget(url: str) -> None:
    """The sandbox's request budget applies by the host, not by how it was written."""
    assert parse_target(url).kind is TargetKind.SANDBOX


@pytest.mark.parametrize(
    "url",
    [
        "https://api.sandbox.harborlockers.com@api.harborlockers.com",  # user info hides the real host
        "https://x:y@api.harborlockers.com",
        "https://api.sandbox.harborlockers.com\\@api.harborlockers.com",
        "https://api.harborlockers.com/\x00",
        "https://api.harbor lockers.com",
        "https://api..harborlockers.com",
        "https://[::1",
        "https://a\udcffb.example",
    ],
)
def test_tricks_are_refused_with_one_line(url: str) -> None:
    """User info, backslashes, control characters and broken hosts are refused, never guessed at."""
    with pytest.raises(UsageError) as caught:
        parse_target(url)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("host", "canonical"),
    [
        ("127.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::1]", "::1"),
        ("[0:0:0:0:0:0:0:1]", "::1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
        ("B\u00fccher.Example", "xn--bcher-kva.example"),
        ("LOCALHOST.", "localhost"),
    ],
)
def test_canonical_forms(host: str, canonical: str) -> None:
    """IP addresses in any form a resolver takes, and names in any case or script, have one spelling."""
    assert canonical_host(host) == canonical


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.1", True), ("2130706433", True), ("0x7f.1", True), ("[::1]", True), ("::ffff:127.0.0.1", True),
     ("localhost", True), ("LOCALHOST.", True), ("127.255.255.254", True),
     ("evil.localhost", False), ("localhost.evil.example", False), ("0.0.0.0", False), ("128.0.0.1", False),
     ("::", False), ("not a host", False), ("", False)],
)  # fmt: skip
def test_loopback_is_127_slash_8_in_any_form_and_only_the_name_localhost(host: str, loopback: bool) -> None:
    """Names under ``.localhost`` may go to DNS on this resolver: only ``localhost`` itself is this machine."""
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize("url", ["http://127.1:8765", "http://2130706433:8765", "http://[::ffff:127.0.0.1]:8765"])
def test_plain_http_to_loopback_in_any_ip_form_is_accepted(url: str) -> None:
    """A sandbox on this machine is reached over plain http, however its address is written."""
    target = load_settings({"target": url}, environ={}, cwd=Path("/nonexistent-dir")).target
    assert target.kind is TargetKind.URL


def test_plain_http_to_a_localhost_subdomain_is_refused() -> None:
    """``evil.localhost`` is not this machine: the secret would go to whoever DNS names."""
    with pytest.raises(UsageError, match="plain http to another machine"):
        load_settings({"target": "http://evil.localhost:8765"}, environ={}, cwd=Path("/nonexistent-dir"))


def test_canonical_url_keeps_path_and_port() -> None:
    assert canonical_url("HTTPS://API.Example.COM.:8443/base") == "https://api.example.com:8443/base"
    with pytest.raises(HostError):
        canonical_url("https://exa mple.com")


# -- the guard at the wire ----------------------------------------------------------------------


@pytest.mark.parametrize("url", [u for u in PRODUCTION_SPELLINGS if "accounts" not in u])
@pytest.mark.parametrize("method", ["POST", "DELETE", "PUT", "PATCH"])
def test_the_wire_refuses_a_write_to_production_however_spelt(url: str, method: str) -> None:
    """Whatever the target was called, a write leaving for production's host is refused at the request."""
    with pytest.raises(RequestRefused, match="production"):
        WirePolicy().check(method, f"{url}/api/v1/towers/0100000000000014/lockers/1401/reservations")
    WirePolicy(allow_production_writes=True).check(method, f"{url}/api/v1/towers/x/lockers/1/reservations")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/towers/1000000000000001/lockers",
        "/api/v1/locations/",
    ],
)
def test_the_wire_lets_reads_reach_production(path: str) -> None:
    """Read-only checks of production stay possible without the opt-in."""
    WirePolicy().check("GET", "https://api.harborlockers.com" + path)
    WirePolicy().check("POST", "https://accounts.harborlockers.com/realms/harbor/protocol/openid-connect/token")
    WirePolicy().check("POST", "https://api.harborlockers.com/api/v1/login/test-token")


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/login/test-token/../../v1/towers/x/lockers/1/reservations",
        "/api/v1/login/test-token%2F..%2F..%2Fx",
        "/realms/harbor/protocol/openid-connect/token/x",
    ],
)
def test_a_read_only_post_cannot_be_stretched(path: str) -> None:
    """Only the exact read-only POST paths pass; anything built on them is a write."""
    with pytest.raises(RequestRefused):
        WirePolicy().check("POST", "https://api.harborlockers.com" + path)


def test_the_wire_refuses_plain_http_to_another_machine() -> None:
    """The secret never travels in clear without the opt-in; Harbor's hosts never over http at all."""
    with pytest.raises(RequestRefused, match="HARBOR_ALLOW_INSECURE_HTTP"):
        WirePolicy().check("POST", "http://10.0.0.5/realms/harbor/protocol/openid-connect/token")
    with pytest.raises(RequestRefused, match="HARBOR_ALLOW_INSECURE_HTTP"):
        WirePolicy().check("GET", "http://evil.localhost:8765/api/v1/locations/")
    WirePolicy(allow_insecure_http=True).check("POST", "http://10.0.0.5/token")
    with pytest.raises(RequestRefused, match="plain http"):
        WirePolicy(allow_insecure_http=True).check("GET", "http://api.sandbox.harborlockers.com/api/v1/locations/")
    WirePolicy().check("POST", "http://127.1:8765/api/v1/towers/x/lockers/1/reservations")


def test_an_httpx_client_with_the_guard_sends_nothing_refused() -> None:
    """The hook sees the final URL of each request, before the transport: nothing reaches it."""
    sent: list[httpx.Request] = []
    transport = httpx.MockTransport(lambda request: sent.append(request) or httpx.Response(201, json={}))
    with httpx.Client(transport=transport, event_hooks=guard_hooks(WirePolicy())) as http:
        with pytest.raises(RequestRefused):
            http.post("https://api.harborlockers\uff0ecom/api/v1/towers/x/lockers/1/reservations", json={})
        assert http.get("https://api.harborlockers.com/api/v1/locations/").status_code == 201
    assert [request.method for request in sent] == ["GET"]


def test_settings_carry_both_opt_ins_to_the_wire() -> None:
    """The policy at the wire is the run's: the production opt-in and the insecure-http opt-in."""
    settings = load_settings(
        {"target": "production", "allow_production_writes": True},
        environ={"HARBOR_ALLOW_INSECURE_HTTP": "1"},
        cwd=Path("/nonexistent-dir"),
    )
    assert settings.wire_policy() == WirePolicy(allow_production_writes=True, allow_insecure_http=True)
    assert Settings().wire_policy() == WirePolicy()
