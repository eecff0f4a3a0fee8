"""Shared helpers of the sandbox's integration tests (imported by name: the test folders are not packages)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

TOWER = "0100000000000014"
OTHER_TOWER = "0100000000000175"
TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
SECRETS = {"demo-provider": "demo-secret", "second-provider": "second-secret"}


def fetch_token(url: str, client_id: str = "demo-provider", scope: str = "service_provider tower_access") -> str:
    """A bearer token from the sandbox's token endpoint (demo credentials)."""
    form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": SECRETS[client_id]}
    answer = httpx.post(url + TOKEN_PATH, data={**form, "scope": scope}, timeout=5)
    answer.raise_for_status()
    token: str = answer.json()["access_token"]
    return token


@dataclass
class Party:
    """One service provider talking to the sandbox with its own bearer token."""

    client_id: str
    http: httpx.Client

    def reserve(self, locker_id: int, duration: int = 300, tower: str = TOWER) -> httpx.Response:
        return self.http.post(f"/api/v1/towers/{tower}/lockers/{locker_id}/reservations", json={"duration": duration})

    def token(self, kind: str, locker_id: int, duration: int = 600, tower: str = TOWER) -> httpx.Response:
        return self.http.post(
            f"/api/v1/towers/{tower}/lockers/{locker_id}/{kind}-locker-tokens",
            json={"client_info": f"{kind} by {self.client_id}", "duration": duration},
        )

    def release(self, locker_id: int, tower: str = TOWER) -> httpx.Response:
        return self.http.post(f"/api/v1/towers/{tower}/lockers/{locker_id}/release-locker", json={})

    def locker(self, locker_id: int, tower: str = TOWER) -> dict[str, Any]:
        answer = self.http.get(f"/api/v1/towers/{tower}/lockers/{locker_id}")
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def status(self, locker_id: int, tower: str = TOWER) -> str:
        return str(self.locker(locker_id, tower)["status"]["name"])

    def listing(self, tower: str = TOWER) -> dict[int, dict[str, Any]]:
        answer = self.http.get(f"/api/v1/towers/{tower}/lockers")
        assert answer.status_code == 200, answer.text
        return {locker["id"]: locker for locker in answer.json()}
