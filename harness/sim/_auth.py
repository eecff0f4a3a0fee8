"""Bearer tokens: the Keycloak-style token endpoint's side and the check on every API call.

Tokens are HS256 JWTs signed with a key derived from the sandbox secret, so they are stateless
and survive ``/_sim/reset`` (the world resets; who may log in does not). They age on the wall
clock, never the virtual one: moving the virtual clock never logs anyone out.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from ._dialects import Dialects
from ._sealing import derive_key, mac
from ._settings import Identity

__all__ = ["SCOPES", "BearerAuthority", "Principal", "TokenEndpointAnswer"]

SERVICE_PROVIDER = "service_provider"
TOWER_ACCESS = "tower_access"
SCOPES = frozenset({SERVICE_PROVIDER, TOWER_ACCESS})
_CACHE_MAX = 4096


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a bearer token speaks for. ``client_id`` is the party that holds lockers; an SDK
    token from ``login/authorize`` also names the app user it was made for."""

    client_id: str
    scopes: frozenset[str]
    expires_at: float  # wall clock
    user_id: str | None = None

    @property
    def is_sdk_token(self) -> bool:
        return self.user_id is not None


@dataclass(frozen=True, slots=True)
class TokenEndpointAnswer:
    status_code: int
    body: dict[str, Any]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


_HEADER = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "harbor-sim"}, separators=(",", ":")).encode())


def _keycloak_error(status: int, error: str, description: str) -> TokenEndpointAnswer:
    return TokenEndpointAnswer(status, {"error": error, "error_description": description})


class BearerAuthority:
    """Issues and checks the sandbox's bearer tokens."""

    def __init__(
        self,
        secret: bytes,
        identities: Iterable[Identity],
        *,
        lifetime: float,
        sdk_lifetime: float,
        dialects: Dialects | None = None,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """``dialects``: the world's, read on each token endpoint call (``no_token_type``,
        ``keycloak_unauthorized_client``)."""
        self._dialects = dialects if dialects is not None else Dialects()
        self._key = derive_key(secret, "bearer-tokens")
        self._secrets = {identity.client_id: identity.client_secret.encode() for identity in identities}
        self._lifetime = lifetime
        self._sdk_lifetime = sdk_lifetime
        self._wall = wall
        self._cache: dict[str, Principal] = {}

    def _sign(self, claims: Mapping[str, Any]) -> str:
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signing_input = f"{_HEADER}.{body}"
        return f"{signing_input}.{_b64(mac(self._key, signing_input.encode()))}"

    def issue(self, client_id: str, scopes: Iterable[str], *, user_id: str | None = None) -> tuple[str, float]:
        """A signed token and its lifetime in seconds."""
        now = self._wall()
        lifetime = self._lifetime if user_id is None else self._sdk_lifetime
        claims = {
            "exp": now + lifetime,
            "iat": now,
            "jti": secrets.token_hex(8),
            "iss": "harbor-sim/realms/harbor",
            "sub": user_id or client_id,
            "azp": client_id,
            "typ": "Bearer",
            "scope": " ".join(sorted(scopes)),
        }
        if user_id is not None:
            claims["sdk_user"] = user_id
        return self._sign(claims), lifetime

    def verify(self, token: str) -> Principal | None:
        """The principal of a valid, unexpired token; ``None`` otherwise."""
        principal = self._cache.get(token)
        if principal is None:
            principal = self._decode(token)
            if principal is None:
                return None
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[token] = principal
        if self._wall() >= principal.expires_at:
            return None
        return principal

    def _decode(self, token: str) -> Principal | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _HEADER:
            return None
        try:
            signature = _unb64(parts[2])
            claims = json.loads(_unb64(parts[1]))
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac(self._key, f"{parts[0]}.{parts[1]}".encode()), signature):
            return None
        try:
            return Principal(
                client_id=str(claims["azp"]),
                scopes=frozenset(str(claims["scope"]).split()),
                expires_at=float(claims["exp"]),
                user_id=claims.get("sdk_user"),
            )
        except (KeyError, TypeError, ValueError):
            return None

    def password_login(self, username: str, password: str, *, sdk: bool) -> str | None:
        """The legacy password login (``login/access-token`` [S]); ``None`` for unknown credentials.

        The sandbox's users are its identities: the username is a client id and the password its
        client secret [G], so a login acts for that service provider. ``/api/v1``: a token with both
        scopes, as a client-credentials token with ``service_provider tower_access``; ``/sdk/v1``: an
        SDK token for the user of that name, as ``login/authorize`` makes one.
        """
        known = self._secrets.get(username)
        if known is None or not hmac.compare_digest(known, password.encode()):
            return None
        if sdk:
            return self.issue(username, (TOWER_ACCESS,), user_id=username)[0]
        return self.issue(username, (SERVICE_PROVIDER, TOWER_ACCESS))[0]

    def token_endpoint(self, body: bytes, authorization: str | None) -> TokenEndpointAnswer:
        """``POST /realms/harbor/protocol/openid-connect/token`` as Keycloak answers it [S]."""
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            return _keycloak_error(400, "invalid_request", "Invalid form body")
        field = {name: values[0] for name, values in form.items() if values}
        grant_type = field.get("grant_type")
        if not grant_type:
            return _keycloak_error(400, "invalid_request", "Missing form parameter: grant_type")
        client_id, client_secret = field.get("client_id"), field.get("client_secret")
        if authorization and authorization[:6].lower() == "basic ":  # client_secret_basic, as Keycloak allows
            try:
                client_id, _, client_secret = base64.b64decode(authorization[6:]).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                client_id = client_secret = None
        known = self._secrets.get(client_id or "")
        if known is None or not hmac.compare_digest(known, (client_secret or "").encode()):
            if known is not None and self._dialects.keycloak_unauthorized_client:
                return _keycloak_error(400, "unauthorized_client", "Invalid client secret")  # older Keycloak [S]
            return _keycloak_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        if grant_type != "client_credentials":
            return _keycloak_error(400, "unsupported_grant_type", "Unsupported grant_type")
        requested = field.get("scope", "").split()
        unknown = [scope for scope in requested if scope not in SCOPES and scope not in ("openid", "profile", "email")]
        if unknown:
            return _keycloak_error(400, "invalid_scope", f"Invalid scopes: {' '.join(requested)}")
        assert client_id is not None  # known is not None
        token, lifetime = self.issue(client_id, (s for s in requested if s in SCOPES))
        answer: dict[str, Any] = {
            "access_token": token,
            "refresh_token": None,
            "refresh_expires_in": 0,
            "expires_in": int(lifetime),
            "token_type": "Bearer",
        }
        if self._dialects.no_token_type:
            del answer["token_type"]
        return TokenEndpointAnswer(200, answer)
