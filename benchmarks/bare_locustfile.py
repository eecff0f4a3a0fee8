"""Bare Locust users for the load benchmarks: the same requests as the harness's users, nothing else.

No oracles, no model, no histograms, no cleanup: only what a request needs to be sent (a bearer
token, the ids the next request names). ``locker-harness bench`` runs them as child processes:

- ``BareDeliveryUser`` (P1): the delivery the harness's ``DeliveryUser`` makes (list, reserve,
  drop-off token, open, close, pickup token, open, close), doors through the control plane;
- ``ReserveTokenUser`` (P2): reserve, drop-off token, release, release on a locker of its own,
  against the virtual sandbox or the static-JSON server of ``static_server.py``.

Credentials come from ``HARBOR_CLIENT_ID`` / ``HARBOR_CLIENT_SECRET``; the tower from
``HARBOR_TOWER_ID`` (default the seeded tower 0100000000000014). With ``LOCKER_HARNESS_CPU_FILE``
set, the CPU seconds the process spent while its users ran are written there (JSON), as the
harness's locustfile writes them in its record: the client's cost, whatever else the machine does.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import time
import urllib.parse
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, events, task

TOWER = os.environ.get("HARBOR_TOWER_ID", "0100000000000014").upper()
#: The seeded tower's in-service lockers (docs/design.md: labels 12 and 24 are out of service).
LOCKERS = [1400 + label for label in range(1, 24) if label != 12]
_TOKEN_PATH = "/realms/harbor/protocol/openid-connect/token"
_LOCKERS_PATH = f"/api/v1/towers/{TOWER}/lockers"
_user_numbers = itertools.count()
_cpu_started: list[float] = []


@events.test_start.add_listener
def _cpu_from(**_: Any) -> None:
    _cpu_started.append(time.process_time())


@events.test_stopping.add_listener
def _cpu_to(**_: Any) -> None:
    where = os.environ.get("LOCKER_HARNESS_CPU_FILE")
    if where and _cpu_started:
        Path(where).write_text(json.dumps({"cpu_s": time.process_time() - _cpu_started[0]}), encoding="utf-8")


class _BareUser(FastHttpUser):
    abstract = True
    wait_time = constant(0)

    def on_start(self) -> None:
        form = urllib.parse.urlencode(
            {
                "grant_type": "client_credentials",
                "client_id": os.environ["HARBOR_CLIENT_ID"],
                "client_secret": os.environ["HARBOR_CLIENT_SECRET"],
                "scope": "service_provider",
            }
        )
        answer = self.client.post(
            _TOKEN_PATH, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}, name="authenticate"
        )
        self.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}


class BareDeliveryUser(_BareUser):
    """P1: the harness's delivery, bare."""

    @task
    def deliver(self) -> None:
        get, post, headers = self.client.get, self.client.post, self.headers
        lockers = get(_LOCKERS_PATH, headers=headers, name="list_lockers").json()
        free = [locker["id"] for locker in lockers if locker["status"]["name"] == "available"]
        for locker_id in random.sample(free, min(len(free), 3)):
            path = f"{_LOCKERS_PATH}/{locker_id}"
            if post(f"{path}/reservations", json={"duration": 300}, headers=headers, name="reserve").status_code == 201:
                break
        else:
            return
        door = f"/_sim/towers/{TOWER}/lockers/{locker_id}"
        body = {"client_info": "locker-harness load", "duration": 900}
        token = post(f"{path}/dropoff-locker-tokens", json=body, headers=headers, name="dropoff_token").json()
        post(f"{door}/open", json={"payload": token["payload"], "payload_auth": token["payload_auth"]},
             headers=headers, name="open_for_dropoff")  # fmt: skip
        post(f"{door}/close", headers=headers, name="close_after_dropoff")
        token = post(f"{path}/pickup-locker-tokens", json=body, headers=headers, name="pickup_token").json()
        post(f"{door}/open", json={"payload": token["payload"], "payload_auth": token["payload_auth"]},
             headers=headers, name="open_for_pickup")  # fmt: skip
        post(f"{door}/close", headers=headers, name="close_after_pickup")


class ReserveTokenUser(_BareUser):
    """P2: reserve, drop-off token, release twice, on a locker no other user touches."""

    def on_start(self) -> None:
        super().on_start()
        self.path = f"{_LOCKERS_PATH}/{LOCKERS[next(_user_numbers) % len(LOCKERS)]}"

    @task
    def cycle(self) -> None:
        post, headers, path = self.client.post, self.headers, self.path
        post(f"{path}/reservations", json={"duration": 300}, headers=headers, name="reserve")
        post(f"{path}/dropoff-locker-tokens", json={"client_info": "bench", "duration": 900}, headers=headers,
             name="dropoff_token")  # fmt: skip
        post(f"{path}/release-locker", json={}, headers=headers, name="release")
        post(f"{path}/release-locker", json={}, headers=headers, name="release_declined")
