"""``cleanup`` trusts no ledger row: its target comes from its URLs, another host's rows have a grace."""

from __future__ import annotations

import dataclasses
import socket

import pytest

from harness.config import Settings, TargetKind, parse_target
from harness.ledger import (
    FOREIGN_GRACE_S,
    EntryState,
    LedgerEntry,
    LockerClaim,
    ProcessStamp,
    UntrustedRow,
    plan,
    row_target,
)

TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
NOW = 1_000_000.0


def _entry(host: str = "", *, age_s: float = 0.0, locker_id: int = 1401) -> LedgerEntry:
    return LedgerEntry(
        id=locker_id,
        run_id="r",
        owner="o",
        process=ProcessStamp(host or socket.gethostname(), 4194303, 1.0),
        target="local",
        api_url="http://127.0.0.1:8765",
        token_url="http://127.0.0.1:8765" + TOKEN_PATH,
        client_id="demo-provider",
        kind="reservation",
        tower_id="0100000000000014",
        locker_id=locker_id,
        location_id=None,
        resource_id=None,
        duration=300,
        state=EntryState.INTENT,
        note="",
        created_at=NOW - age_s,
        updated_at=NOW - age_s,
    )


def _claim(label: str, api_url: str | None, token_url: str | None) -> LockerClaim:
    return LockerClaim(label, api_url, token_url, "demo-provider", "0100000000000014", 1401, ())


def test_another_hosts_rows_are_left_alone_within_their_grace_only() -> None:
    """Young rows of another host are live; past the grace, or with force, they are given back."""
    young, old = _entry("other-host", age_s=60), _entry("other-host", age_s=FOREIGN_GRACE_S + 1, locker_id=1402)
    work = plan([young, old], now=NOW)
    assert [claim.locker_id for claim in work.claims] == [1402]
    assert [entry.locker_id for entry in work.live] == [1401]
    forced = plan([young, old], now=NOW, force=True)
    assert sorted(claim.locker_id for claim in forced.claims) == [1401, 1402]


def test_force_never_touches_a_live_run_of_this_host() -> None:
    """--force is about rows whose process cannot be looked at; a live process here stays untouched."""
    mine = dataclasses.replace(_entry(), process=ProcessStamp.current())
    assert plan([mine], now=NOW, force=True).claims == ()


@pytest.mark.parametrize(
    ("label", "api_url", "token_url", "kind"),
    [
        ("local", "http://127.0.0.1:8765", "http://127.0.0.1:8765" + TOKEN_PATH, TargetKind.LOCAL),
        ("sandbox", "https://api.sandbox.harborlockers.com",
         "https://accounts.sandbox.harborlockers.com" + TOKEN_PATH, TargetKind.SANDBOX),
        ("http://127.0.0.1:9000", "http://127.0.0.1:9000", "http://127.0.0.1:9000" + TOKEN_PATH, TargetKind.URL),
    ],
)  # fmt: skip
def test_rows_that_add_up_are_trusted(label: str, api_url: str, token_url: str, kind: TargetKind) -> None:
    assert row_target(_claim(label, api_url, token_url), Settings()).kind is kind


def test_a_token_url_the_row_alone_names_is_refused_and_one_the_configuration_names_is_trusted() -> None:
    """A row of a URL target whose token endpoint is on another host (a Keycloak of its own) is trusted
    only where this configuration names that token URL for that API URL: a crafted row (any host, or
    another port of this machine) never gets the secret sent where it alone says."""
    keycloak = "https://kc.example" + TOKEN_PATH
    claim = _claim("https://staging.example", "https://staging.example", keycloak)
    with pytest.raises(UntrustedRow, match="row alone says"):
        row_target(claim, Settings())
    configured = Settings(target=parse_target("https://staging.example", token_url=keycloak))
    assert row_target(claim, configured).token_url == keycloak
    for crafted in (
        _claim("http://127.0.0.1:44291", "http://127.0.0.1:44291", "https://evil.example" + TOKEN_PATH),
        _claim("local", "http://127.0.0.1:8765", "http://127.0.0.1:38283" + TOKEN_PATH),
    ):
        with pytest.raises(UntrustedRow, match="row alone says"):
            row_target(crafted, configured)


@pytest.mark.parametrize(
    ("label", "api_url", "token_url", "reason"),
    [
        ("local", "https://api.harborlockers.com", "https://accounts.harborlockers.com" + TOKEN_PATH, "labelled local"),
        ("local", "http://127.0.0.1:8765", "http://10.0.0.9" + TOKEN_PATH, "labelled local"),
        ("local", "http://evil.localhost:8765", "http://evil.localhost:8765" + TOKEN_PATH, "labelled local"),
        ("sandbox", "https://api.harborlockers\uff0ecom", "https://accounts.sandbox.harborlockers.com" + TOKEN_PATH,
         "labelled sandbox"),
        ("sandbox", "https://api.sandbox.harborlockers.com", "https://kc.example" + TOKEN_PATH, "token URL"),
        ("production", "https://api.harborlockers.com", "https://accounts.sandbox.harborlockers.com" + TOKEN_PATH,
         "token URL"),
        ("https://staging.example", "https://api.harborlockers.com", "https://accounts.harborlockers.com" + TOKEN_PATH,
         "labelled https://staging.example"),
        ("https://staging.example", "https://staging.example", "https://accounts.harborlockers.com" + TOKEN_PATH,
         "production host"),
        ("https://staging.example", "https://staging.example", "http://203.0.113.9" + TOKEN_PATH, "in clear"),
        ("http://10.0.0.5:8765", "http://10.0.0.5:8765", "http://10.0.0.5:8765" + TOKEN_PATH, "in clear"),
        ("local", None, None, "no API URL"),
        ("https://staging.example", "https://user@staging.example", None, "cannot be used"),
    ],
)  # fmt: skip
def test_rows_that_do_not_add_up_are_refused_with_their_reason(
    label: str, api_url: str | None, token_url: str | None, reason: str
) -> None:
    with pytest.raises(UntrustedRow, match=reason):
        row_target(_claim(label, api_url, token_url), Settings())


def test_plain_http_rows_pass_with_the_opt_in() -> None:
    """HARBOR_ALLOW_INSECURE_HTTP is the user's word for the secret in clear, for rows too."""
    claim = _claim("http://10.0.0.5:8765", "http://10.0.0.5:8765", "http://10.0.0.5:8765" + TOKEN_PATH)
    assert row_target(claim, Settings(allow_insecure_http=True)).kind is TargetKind.URL
