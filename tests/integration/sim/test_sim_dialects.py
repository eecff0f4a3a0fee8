"""Every dialect makes the sandbox answer one [I]/[G] way differently, through the control plane and
over HTTP: each check below asserts the default answer with its dialect off and the dialect's with
it on (``webhook_signature_header`` is checked where webhooks are delivered: test_sim_webhooks.py)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from harness.sim import DIALECT_ASSUMPTIONS, DIALECT_NAMES, ControlError, SimControl, SimSettings, VirtualSandbox

from .sandbox_parties import SECRETS, TOKEN_PATH, TOWER, Party

LINK = {"returnUrl": "", "clientInfo": "order 7", "payload": {}}
Check = Callable[[Party, SimControl, bool], None]
CHECKS: dict[str, Check] = {}


def dialect(name: str) -> Callable[[Check], Check]:
    """Register the check of dialect ``name``: it gets whether the dialect is on."""

    def register(check: Check) -> Check:
        CHECKS[name] = check
        return check

    return register


def _dropoff(demo: Party, locker_id: int) -> dict[str, object]:
    answer = demo.token("dropoff", locker_id)
    assert answer.is_success, answer.text
    token: dict[str, object] = answer.json()
    return token


@dialect("create_200")
def _creates(demo: Party, control: SimControl, on: bool) -> None:
    created = 200 if on else 201
    assert demo.reserve(1401).status_code == created
    token = demo.token("dropoff", 1401)
    assert token.status_code == created
    control.open_door(TOWER, 1401, token.json()["payload"], token.json()["payload_auth"])
    control.close_door(TOWER, 1401)
    assert demo.token("pickup", 1401).status_code == created
    link = {**LINK, "locationId": 1, "lockerTypeId": 1}
    assert demo.http.post("/api/v1/locker-open-requests/dropoff-locker-request", json=link).status_code == created
    pickup_link = {**LINK, "lockerId": 1401}
    assert demo.http.post("/api/v1/locker-open-requests/pickup-locker-request", json=pickup_link).status_code == created
    session = {"duration": 60, "claims": ["locker_delivery"], "version": "1.2.3"}
    assert demo.http.post(f"/sdk/v1/towers/{TOWER}/session-token", json=session).status_code == created
    assert demo.http.delete(f"/api/v1/towers/{TOWER}/lockers/1402/reservations/999").status_code == 404  # not a create


@dialect("status_ids_shifted")
def _status_ids(demo: Party, control: SimControl, on: bool) -> None:
    demo.reserve(1401)
    _dropoff(demo, 1402)
    listing = demo.listing()
    shown = {listing[i]["status"]["name"]: listing[i]["status"]["id"] for i in (1401, 1402, 1403, 1412)}
    offset = 10 if on else 0
    assert shown == {"available": 1, "reserved": 2 + offset, "rented": 3 + offset, "out_of_service": 6 + offset}


@dialect("out_of_service_spaced")
def _status_names(demo: Party, control: SimControl, on: bool) -> None:
    spelled = "out of service" if on else "out_of_service"
    assert demo.status(1412) == spelled
    control.force(TOWER, 1401, "out_of_service")
    assert demo.listing()[1401]["status"] == {"name": spelled, "id": 6}
    [forced] = [e for e in control.events() if e["data"]["source"] == "LOCKER_STATUS_FORCED"]
    assert forced["data"]["locker_status"] == spelled
    assert control.locker(1401)["status"] == "out_of_service"  # the control plane speaks the model's names


@dialect("no_token_id")
def _token_id(demo: Party, control: SimControl, on: bool) -> None:
    token = _dropoff(demo, 1401)
    assert ("id" in token) is not on
    assert {"tower_id", "locker", "payload", "payload_auth", "expires"} <= token.keys()


@dialect("expires_naive")
def _expires(demo: Party, control: SimControl, on: bool) -> None:
    reservation = demo.reserve(1401).json()
    token = _dropoff(demo, 1401)
    for expires in (reservation["expires"], token["expires"]):
        moment = datetime.fromisoformat(str(expires))
        assert (moment.tzinfo is None) is on
        as_utc = moment.replace(tzinfo=UTC) if on else moment
        assert abs(as_utc.timestamp() - control.state()["now"]) < 3700  # the same instant, read as UTC


@dialect("occupied_on_close")
def _occupied_on(demo: Party, control: SimControl, on: bool) -> None:
    token = _dropoff(demo, 1401)
    control.open_door(TOWER, 1401, str(token["payload"]), str(token["payload_auth"]))
    shown_while_open = "rented" if on else "occupied"
    assert demo.status(1401) == shown_while_open
    assert demo.listing()[1401]["status"]["name"] == shown_while_open
    assert control.locker(1401)["status"] == "occupied"  # the tower (and the model) know at once
    [used] = [e for e in control.events() if e["data"]["source"] == "LOCKER_TOKEN_USED"]
    assert used["data"]["locker_status"] == shown_while_open
    assert control.close_door(TOWER, 1401)["status"]["name"] == "occupied"
    assert demo.status(1401) == "occupied"


@dialect("no_request_type")
def _request_type(demo: Party, control: SimControl, on: bool) -> None:
    link = {**LINK, "locationId": 1, "lockerTypeId": 1}
    created = demo.http.post("/api/v1/locker-open-requests/dropoff-locker-request", json=link).json()
    read = demo.http.get(f"/api/v1/locker-open-requests/{created['id']}").json()
    for answer in (created, read):
        assert ("requestType" in answer) is not on
        assert {"id", "lockerId", "towerId", "linkToken"} <= answer.keys()


@dialect("no_token_type")
def _token_type(demo: Party, control: SimControl, on: bool) -> None:
    form = {"grant_type": "client_credentials", "client_id": "demo-provider", "client_secret": SECRETS["demo-provider"]}
    answer = demo.http.post(TOKEN_PATH, data={**form, "scope": "service_provider"})
    assert answer.status_code == 200
    assert ("token_type" in answer.json()) is not on
    token = answer.json()["access_token"]
    assert demo.http.get(
        f"/api/v1/towers/{TOWER}/lockers/1401", headers={"Authorization": f"Bearer {token}"}
    ).is_success


@dialect("keycloak_unauthorized_client")
def _wrong_secret(demo: Party, control: SimControl, on: bool) -> None:
    form = {"grant_type": "client_credentials", "client_id": "demo-provider", "client_secret": "wrong"}
    wrong = demo.http.post(TOKEN_PATH, data=form)
    expected = (400, "unauthorized_client") if on else (401, "invalid_client")
    assert (wrong.status_code, wrong.json()["error"]) == expected
    unknown = demo.http.post(TOKEN_PATH, data={**form, "client_id": "nobody"})
    assert (unknown.status_code, unknown.json()["error"]) == (401, "invalid_client")


def test_every_dialect_has_a_check_and_an_assumption() -> None:
    """Each dialect has a check here (or in the webhook tests) and names the assumption it refutes."""
    assert sorted([*CHECKS, "webhook_signature_header"]) == sorted(DIALECT_NAMES)
    assert sorted(DIALECT_ASSUMPTIONS) == sorted(DIALECT_NAMES)
    refuted = [assumption for assumption in DIALECT_ASSUMPTIONS.values() if assumption is not None]
    assert len(refuted) == len(set(refuted)), "two dialects refute one assumption"


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_sandbox_answers_as_we_assume_without_the_dialect(name: str, demo: Party, control: SimControl) -> None:
    """With the dialect off, the sandbox gives our assumed answer."""
    CHECKS[name](demo, control, False)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_the_dialect_changes_exactly_its_answer(name: str, demo: Party, control: SimControl) -> None:
    """With the dialect on (switched through the control plane), the sandbox answers its way."""
    assert control.set_dialects({name: True}) == {other: other == name for other in DIALECT_NAMES}
    CHECKS[name](demo, control, True)


def test_control_plane_lists_sets_refuses_and_resets_dialects(control: SimControl) -> None:
    """``/_sim/dialects`` lists every dialect (off), sets some, refuses an unknown name with 422 naming
    it (changing nothing), shows them in ``/_sim/state``, and ``/_sim/reset`` turns them off."""
    assert control.dialects() == dict.fromkeys(DIALECT_NAMES, False)
    control.set_dialects(create_200=True, no_token_id=True)
    with pytest.raises(ControlError) as refused:
        control.set_dialects(create_200=False, spoken_french=True)
    assert refused.value.status_code == 422 and "spoken_french" in str(refused.value.detail)
    on = {name for name, flag in control.state()["dialects"].items() if flag}
    assert on == {"create_200", "no_token_id"}
    control.reset()
    assert not any(control.dialects().values())


def test_a_sandbox_starts_with_its_settings_dialects() -> None:
    """``SimSettings(dialects=...)`` switches them on from the first request, in a thread or a subprocess;
    an unknown name is a ``ValueError`` naming it."""
    with VirtualSandbox(SimSettings(dialects={"create_200"})) as sandbox:
        assert {name for name, on in sandbox.control.dialects().items() if on} == {"create_200"}
    child = VirtualSandbox(SimSettings(dialects={"no_token_type", "expires_naive"})).start_subprocess()
    try:
        assert {name for name, on in child.control.dialects().items() if on} == {"no_token_type", "expires_naive"}
    finally:
        child.stop()
    with pytest.raises(ValueError, match=r"unknown dialect\(s\): spoken_french"):
        SimSettings(dialects={"spoken_french"})


def test_the_documented_table_names_every_dialect() -> None:
    """The module docstring's table (the docs' source) names every dialect and its assumption."""
    from harness.sim import _dialects

    table = _dialects.__doc__ or ""
    for name, assumption in DIALECT_ASSUMPTIONS.items():
        assert f"``{name}``" in table
        if assumption is not None:
            assert assumption[:20] in table


def test_dialects_are_no_bug_switches(control: SimControl) -> None:
    """Dialects and bug switches are separate switchboards: setting one never touches the other."""
    control.set_dialects(create_200=True)
    assert not any(control.bugs().values())
    control.set_bugs(double_booking=True)
    assert control.dialects()["create_200"] is True
    with pytest.raises(ControlError):
        control.set_bugs(create_200=True)


def test_http_client_sees_the_dialect_on_a_served_sandbox(sandbox: VirtualSandbox) -> None:
    """Switched over HTTP (``POST /_sim/dialects``), a dialect reaches the next request of any client."""
    assert httpx.post(sandbox.url + "/_sim/dialects", json={"no_token_type": True}, timeout=5).status_code == 200
    form = {
        "grant_type": "client_credentials",
        "client_id": "demo-provider",
        "client_secret": SECRETS["demo-provider"],
        "scope": "service_provider",
    }
    assert "token_type" not in httpx.post(sandbox.url + TOKEN_PATH, data=form, timeout=5).json()
