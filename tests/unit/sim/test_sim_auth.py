"""Bearer tokens: Keycloak's answers, signature and wall-clock expiry."""

from __future__ import annotations

import base64

from harness.sim import Identity
from harness.sim._auth import BearerAuthority


class FakeWall:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def authority(wall: FakeWall | None = None) -> BearerAuthority:
    return BearerAuthority(
        b"k" * 32, [Identity("demo-provider", "demo-secret")], lifetime=300, sdk_lifetime=3600, wall=wall or FakeWall()
    )


FORM = b"grant_type=client_credentials&client_id=demo-provider&client_secret=demo-secret"


def test_granted_token_carries_the_requested_scopes() -> None:
    """The token endpoint grants the known scopes asked for and nothing else."""
    issuer = authority()
    answer = issuer.token_endpoint(FORM + b"&scope=service_provider+openid", None)
    assert answer.status_code == 200
    principal = issuer.verify(answer.body["access_token"])
    assert principal is not None and principal.scopes == frozenset({"service_provider"})


def test_no_scope_grants_no_api_scope() -> None:
    """Without ``scope`` the token reaches neither API [G]: a client that forgets it learns at once."""
    issuer = authority()
    principal = issuer.verify(issuer.token_endpoint(FORM, None).body["access_token"])
    assert principal is not None and principal.scopes == frozenset()


def test_basic_client_authentication_is_accepted() -> None:
    """Client credentials in a Basic header work as Keycloak's ``client_secret_basic``."""
    basic = "Basic " + base64.b64encode(b"demo-provider:demo-secret").decode()
    answer = authority().token_endpoint(b"grant_type=client_credentials&scope=tower_access", basic)
    assert answer.status_code == 200


def test_tokens_expire_on_the_wall_clock() -> None:
    """A token is valid for ``lifetime`` seconds of wall time, then refused."""
    wall = FakeWall()
    issuer = authority(wall)
    token, lifetime = issuer.issue("demo-provider", ["service_provider"])
    assert lifetime == 300
    wall.now += 299
    assert issuer.verify(token) is not None
    wall.now += 1
    assert issuer.verify(token) is None


def test_tampered_or_foreign_tokens_are_refused() -> None:
    """A changed claim, a token of another sandbox, or garbage: refused."""
    issuer = authority()
    token, _ = issuer.issue("demo-provider", ["service_provider"])
    header, _body, signature = token.split(".")
    other, _ = BearerAuthority(
        b"x" * 32, [Identity("demo-provider", "demo-secret")], lifetime=300, sdk_lifetime=1
    ).issue("demo-provider", ["service_provider"])
    forged_body = base64.urlsafe_b64encode(b'{"azp":"second-provider","scope":"service_provider","exp":9e9}')
    for bad in (f"{header}.{forged_body.decode().rstrip('=')}.{signature}", other, "a.b.c", "", "...."):
        assert issuer.verify(bad) is None


def test_sdk_tokens_name_their_user_and_provider() -> None:
    """An SDK token speaks for its provider, names the app user, and lives ``sdk_lifetime``."""
    issuer = authority()
    token, lifetime = issuer.issue("demo-provider", ["tower_access"], user_id="courier-3")
    principal = issuer.verify(token)
    assert principal is not None and lifetime == 3600
    assert (principal.client_id, principal.user_id, principal.is_sdk_token) == ("demo-provider", "courier-3", True)
