"""Sealed tokens: what only the sandbox and its virtual towers can mint, read and check.

Each tower has keys derived from the sandbox's secret. A locker token's ``payload`` is a CBOR
claim map and its ``payload_auth`` an HMAC-SHA256 over the payload with the tower's locker-token
key. A session token's payload carries the session's permissions and expiry and the session seed
encrypted (AES-GCM) to the tower's key; its ``payload_auth`` is an HMAC with the tower's session
key. Separate keys per kind mean a session payload never passes as a locker token.

The client treats all of it as opaque hex; nothing here is Harbor's real format [G].
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from typing import Any

import cbor2
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from harness.model import TokenKind

__all__ = [
    "LockerTokenClaims",
    "SessionClaims",
    "TowerKeys",
    "derive_key",
    "mac",
    "read_locker_claims",
    "read_session_claims",
    "seal_locker_token",
    "seal_session_token",
    "verify_mac",
]

_VERSION = 1


def derive_key(secret: bytes, label: str, size: int = 32) -> bytes:
    """HKDF-Expand-like derivation of a named key from the sandbox secret (one block is enough)."""
    return hmac.new(secret, b"harbor-sim/" + label.encode() + b"\x01", hashlib.sha256).digest()[:size]


@dataclass(frozen=True, slots=True)
class TowerKeys:
    """One tower's keys; ``repr`` hides them."""

    tower_id: str
    locker_auth: bytes
    session_auth: bytes
    session_enc: bytes
    events_auth: bytes

    @classmethod
    def derive(cls, secret: bytes, tower_id: str) -> TowerKeys:
        return cls(
            tower_id,
            derive_key(secret, f"tower/{tower_id}/locker-token"),
            derive_key(secret, f"tower/{tower_id}/session-token"),
            derive_key(secret, f"tower/{tower_id}/session-seed", 16),
            derive_key(secret, f"tower/{tower_id}/events"),
        )

    def __repr__(self) -> str:
        return f"TowerKeys({self.tower_id})"


def mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()


def verify_mac(key: bytes, payload: bytes, auth: bytes) -> bool:
    return hmac.compare_digest(mac(key, payload), auth)


def _load_map(payload: bytes) -> dict[str, Any] | None:
    try:
        value = cbor2.loads(payload)
    except Exception:  # cbor2 raises several types for garbage; any of them means "not ours"
        return None
    return value if isinstance(value, dict) and value.get("v") == _VERSION else None


@dataclass(frozen=True, slots=True)
class LockerTokenClaims:
    """What a locker token promises (the tower reads it; the model's ``TokenClaim`` is a part)."""

    tower_id: str
    locker_id: int
    door: str
    kind: TokenKind
    expires_at: float
    epoch: int
    token_id: int
    client_info: str
    holder: str

    def to_cbor(self) -> bytes:
        return cbor2.dumps(
            {
                "v": _VERSION,
                "typ": "locker",
                "tower": self.tower_id,
                "locker": self.locker_id,
                "door": self.door,
                "kind": self.kind.value,
                "exp": self.expires_at,
                "epoch": self.epoch,
                "tid": self.token_id,
                "ci": self.client_info,
                "holder": self.holder,
            }
        )


def seal_locker_token(keys: TowerKeys, claims: LockerTokenClaims) -> tuple[bytes, bytes]:
    """``(payload, payload_auth)`` for a locker token of ``keys``' tower."""
    payload = claims.to_cbor()
    return payload, mac(keys.locker_auth, payload)


def read_locker_claims(payload: bytes) -> LockerTokenClaims | None:
    """The claims a payload states, unchecked (``None`` if it is not a locker token at all)."""
    raw = _load_map(payload)
    if raw is None or raw.get("typ") != "locker":
        return None
    try:
        claims = LockerTokenClaims(
            tower_id=str(raw["tower"]),
            locker_id=int(raw["locker"]),
            door=str(raw["door"]),
            kind=TokenKind(raw["kind"]),
            expires_at=float(raw["exp"]),
            epoch=int(raw["epoch"]),
            token_id=int(raw["tid"]),
            client_info=str(raw["ci"]),
            holder=str(raw["holder"]),
        )
    except (KeyError, ValueError, TypeError):
        return None
    return claims


@dataclass(frozen=True, slots=True)
class SessionClaims:
    """A session token's content; ``seed`` is the session seed (secret, never logged)."""

    tower_id: str
    permissions: tuple[str, ...]
    expires_at: float
    client_id: str
    user_id: str | None
    version: str
    seed: bytes

    def __repr__(self) -> str:
        return f"SessionClaims({self.tower_id}, {self.permissions}, expires_at={self.expires_at})"


def seal_session_token(keys: TowerKeys, claims: SessionClaims) -> tuple[bytes, bytes]:
    """``(payload, payload_auth)``: the seed travels encrypted to the tower's key."""
    nonce = os.urandom(12)
    tower = bytes.fromhex(keys.tower_id)
    sealed_seed = nonce + AESGCM(keys.session_enc).encrypt(nonce, claims.seed, tower)
    payload = cbor2.dumps(
        {
            "v": _VERSION,
            "typ": "session",
            "tower": claims.tower_id,
            "perm": list(claims.permissions),
            "exp": claims.expires_at,
            "sub": claims.client_id,
            "user": claims.user_id,
            "ver": claims.version,
            "seed": sealed_seed,
        }
    )
    return payload, mac(keys.session_auth, payload)


def read_session_claims(payload: bytes, keys: TowerKeys | None = None) -> SessionClaims | None:
    """The claims of a session payload; the seed is decrypted only with the right tower's ``keys``
    (otherwise it is empty). ``None`` if the payload is not a session token at all."""
    raw = _load_map(payload)
    if raw is None or raw.get("typ") != "session":
        return None
    try:
        seed = b""
        sealed = raw["seed"]
        if keys is not None and isinstance(sealed, bytes) and len(sealed) > 12:
            seed = AESGCM(keys.session_enc).decrypt(sealed[:12], sealed[12:], bytes.fromhex(keys.tower_id))
        user = raw.get("user")
        return SessionClaims(
            tower_id=str(raw["tower"]),
            permissions=tuple(str(p) for p in raw["perm"]),
            expires_at=float(raw["exp"]),
            client_id=str(raw["sub"]),
            user_id=None if user is None else str(user),
            version=str(raw["ver"]),
            seed=seed,
        )
    except Exception:  # a wrong key (InvalidTag), a missing field, a wrong type: not a token of ours
        return None
