"""Dialects: each makes the sandbox answer one way a real Harbor plausibly might where our
reading of Harbor is only an inference [I] or a guess [G]. Unlike a bug switch, a dialect plants
no defect: a client that reads Harbor tolerantly must stay green, and report the assumption the
dialect refutes (the assumptions registry's id, in the second column).

================================  ========================  ==========================================================
dialect                           assumption it refutes     the one behaviour it flips
================================  ========================  ==========================================================
``create_200``                    ``create_status``         creates (reserve, drop-off and pickup tokens, locker open
                                                            requests, session tokens) answer 200, not 201 [I]
``status_ids_shifted``            ``status_ids``            ``status.id`` of every status but available (1 [S]) is
                                                            ours + 10: reserved 12, rented 13, occupied 14, declined
                                                            15, out of service 16 [G]
``out_of_service_spaced``         ``status_names``          the out-of-service status is named ``out of service``
                                                            (lockers and webhooks), not ``out_of_service`` [G]
``no_token_id``                   ``token_id_field``        drop-off and pickup token answers carry no ``id`` [G]
``expires_naive``                 ``expires_offset``        ``expires`` (tokens, reservations) has no UTC offset:
                                                            ``2026-11-28T04:05:00.000``, UTC implied [I]
``occupied_on_close``             ``occupied_on``           a drop-off token's door opening leaves the REST views (and
                                                            the LOCKER_TOKEN_USED webhook) at ``rented`` until the door
                                                            closes; the tower and the model turn occupied on the open
                                                            as ever [I]
``no_request_type``               ``request_type_field``    locker open request answers carry no ``requestType`` [G]
``no_token_type``                 ``token_type_field``      the token endpoint's and ``login/authorize``'s answers have
                                                            no ``token_type`` [I] (the password logins keep theirs [S])
``webhook_signature_header``      ``webhook_signature_``    signed webhooks carry the signature in ``X-Signature``, not
                                  ``header``                ``X-Harbor-Signature`` (same ``sha256=<hex>`` value) [G]
``keycloak_unauthorized_client``  (none: [S] either way)    the token endpoint answers a known client's wrong secret 400
                                                            ``unauthorized_client`` (older Keycloak), not 401
                                                            ``invalid_client``
================================  ========================  ==========================================================

All are off by default. ``/_sim/reset`` turns them off like the bug switches (those the sandbox
was started with too); ``harness.testing.fresh_world`` keeps the ones that are on. With any
dialect on, every bug switch still plants its defect: where a bug and a dialect touch the same
field, the bug is applied in the dialect's terms (``wrong_status_id`` shows the next status's id
in the dialect's numbering).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ._switchboard import Switchboard

__all__ = ["DIALECT_ASSUMPTIONS", "DIALECT_NAMES", "Dialects"]


@dataclass(slots=True)
class Dialects(Switchboard):
    """The dialects of the module docstring's table; all off by default."""

    KIND: ClassVar[str] = "dialect(s)"

    create_200: bool = False
    status_ids_shifted: bool = False
    out_of_service_spaced: bool = False
    no_token_id: bool = False
    expires_naive: bool = False
    occupied_on_close: bool = False
    no_request_type: bool = False
    no_token_type: bool = False
    webhook_signature_header: bool = False
    keycloak_unauthorized_client: bool = False


DIALECT_NAMES: tuple[str, ...] = Dialects.names()

#: The assumption (the client's registry id) each dialect refutes; ``None``: it refutes none.
DIALECT_ASSUMPTIONS: dict[str, str | None] = {
    "create_200": "create_status",
    "status_ids_shifted": "status_ids",
    "out_of_service_spaced": "status_names",
    "no_token_id": "token_id_field",
    "expires_naive": "expires_offset",
    "occupied_on_close": "occupied_on",
    "no_request_type": "request_type_field",
    "no_token_type": "token_type_field",
    "webhook_signature_header": "webhook_signature_header",
    "keycloak_unauthorized_client": None,
}
