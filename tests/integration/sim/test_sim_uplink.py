"""Without uplink the REST side learns of a door event only when the tower's events are uploaded."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.sim import SimSettings, VirtualSandbox

from .sandbox_parties import TOWER, fetch_token


@pytest.fixture(scope="module")
def offline() -> Iterator[VirtualSandbox]:
    with VirtualSandbox(SimSettings(uplink=False)) as sandbox:
        yield sandbox


def test_door_close_shows_after_the_event_upload(offline: VirtualSandbox) -> None:
    """After the drop-off door opens, and after it closes, the API still shows rented; once the tower's
    events are uploaded, occupied."""
    offline.control.reset()
    headers = {"Authorization": f"Bearer {fetch_token(offline.url)}"}
    with httpx.Client(base_url=offline.url, headers=headers, timeout=5) as http:
        token = http.post(
            f"/api/v1/towers/{TOWER}/lockers/1401/dropoff-locker-tokens", json={"client_info": "", "duration": 600}
        ).json()

        def status() -> str:
            return str(http.get(f"/api/v1/towers/{TOWER}/lockers/1401").json()["status"]["name"])

        offline.control.open_door(TOWER, 1401, token["payload"], token["payload_auth"])
        assert status() == "rented"
        offline.control.close_door(TOWER, 1401)
        assert status() == "rented"
        assert offline.control.locker(1401)["status"] == "occupied"  # the tower knows
        firmware = offline.world.firmwares[TOWER]
        batch = firmware.event_batch(0, max_count=50)
        upload = {
            "syncEventStart": batch.start,
            "syncEventCount": batch.count,
            "payload": batch.payload.hex(),
            "payloadAuth": batch.payload_auth.hex(),
        }
        assert http.post(f"/sdk/v1/towers/{TOWER}/events", json=[upload]).status_code == 200
        assert status() == "occupied"
