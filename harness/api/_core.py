"""The sans-IO core shared by the sync and the async client.

An exchange is a generator: it yields *actions* (``Send`` a request, ``Sleep`` a while) and is
sent back *outcomes* (an ``httpx.Response``, or the ``httpx.RequestError`` the send raised).
Everything with a rule in it lives here once: bearer tokens and their refresh, the retry policy,
the production guard, the ``Holds`` hook, error mapping and strict parsing. ``HarborClient`` and
``AsyncHarborClient`` only perform the actions, one with blocking calls and one with ``await``.

Retries follow Harbor's SDK [S, reference 5]: 3 attempts in all, 1 s before the second and 2 s
before the third; only transport errors, 408 and 5xx are retried, any other 4xx fails at once.
A 429 waits for its ``Retry-After`` (capped) and counts as an attempt.

Retrying a create is not idempotent: an attempt whose answer was lost (a read timeout, a dropped
connection, a 5xx) may have reserved the locker, and the retry then meets that reservation as a
409. So a create retried after such an attempt and then refused (409/403) looks at what the caller
holds (``users/me/assigned-lockers``) before believing the refusal: a reservation of its own is
recorded through the ``Holds`` hook, given back (its id was in the lost answer) and made once
more; a token of its own is recorded as of unknown outcome (``AnswerLost``) and the refusal stands.

A documented operation answers one success code. A create is documented as 201, a guess
(``create_status`` [I] in ``harness.assumptions``): any 2xx is read, and the code is recorded as
an observation of that guess. Another 2xx for anything else is a
``ProductDefect(check="status_code_conformance")``.

The token endpoint is Keycloak's [S]: a wrong secret answers ``invalid_client`` (401) or, in older
releases, ``unauthorized_client`` (400 or 401); both are the credentials refused (exit 2).
"""

from __future__ import annotations

import asyncio
import collections
import email.utils
import time
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar, cast

import httpx

from harness.api._call import Call, Scope
from harness.api._holds import NO_HOLDS, Hold, HoldAction, HoldKind, Holds
from harness.api._models import Reader
from harness.api._operations import assigned_lockers, release_locker
from harness.assumptions import ASSUMPTIONS, record
from harness.config import Credentials, Settings
from harness.errors import (
    BadRequest,
    Conflict,
    Forbidden,
    HarborAPIError,
    HarnessError,
    InfrastructureError,
    NotFound,
    ProductDefect,
    RateLimited,
    ServerError,
    TargetUnreachable,
    Unauthorized,
    UsageError,
    ValidationFailed,
)
from harness.model import LockerStatus
from harness.redaction import Redactor, redactor

__all__ = [
    "AnswerLost",
    "CredentialsRefused",
    "Exchange",
    "HarborSession",
    "RetryPolicy",
    "Send",
    "Sleep",
    "error_for_response",
]

T = TypeVar("T")


class CredentialsRefused(Unauthorized, UsageError):
    """The token endpoint refused the client id and secret: a configuration error (exit 2)."""


class AnswerLost(InfrastructureError):
    """What a ``Holds`` hook hears when a create may have landed on an attempt whose answer was lost:
    the target may hold something of the caller's that the caller never learnt the id of."""


@dataclass(frozen=True, slots=True)
class Send:
    """Send one HTTP request; ``where`` names it in messages (``POST /api/v1/...``)."""

    method: str
    url: str
    where: str
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)  # carries the bearer token
    json: Any = None
    data: Mapping[str, str] | None = field(default=None, repr=False)  # carries the client secret
    params: Mapping[str, str | int | float] | None = None


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float


Action = Send | Sleep
Outcome = httpx.Response | httpx.RequestError | None
Exchange = Generator[Action, Outcome, T]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts and how long between them; the sleeps are injectable so tests never wait."""

    attempts: int = 3
    first_delay: float = 1.0
    factor: float = 2.0
    #: The longest a ``Retry-After`` is honoured for; a longer one waits this long.
    max_retry_after: float = 20.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.first_delay < 0 or self.factor < 1 or self.max_retry_after < 0:
            raise ValueError("a retry policy needs attempts >= 1, delays >= 0 and factor >= 1")

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt ``failed_attempt`` (1-based) failed."""
        return self.first_delay * self.factor ** (failed_attempt - 1)

    def retry_after(self, response: httpx.Response, failed_attempt: int) -> float:
        """Seconds to wait after a 429: its ``Retry-After`` within the cap, else the backoff."""
        wait = _retry_after_seconds(response)
        return self.delay(failed_attempt) if wait is None else min(max(wait, 0.0), self.max_retry_after)


def _retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
        now_header = response.headers.get("date")
        now = email.utils.parsedate_to_datetime(now_header).timestamp() if now_header else time.time()
    except (TypeError, ValueError, IndexError):
        return None
    return moment.timestamp() - now


#: Retried attempts a session describes (the newest); a count of all is kept besides.
_RETRIED_KEPT: Final = 50

#: The policy a client uses unless given one (Harbor's SDK policy).
DEFAULT_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class _Bearer:
    token: str = field(repr=False)
    refresh_at: float


# Bearer tokens are renewed this long before they expire, or at half their life if that is sooner.
_REFRESH_MARGIN: Final = 30.0
#: What Keycloak says for a wrong client id or secret [S]: ``invalid_client``, or ``unauthorized_client``.
_REFUSED_CLIENT: Final = frozenset(map(str, cast(tuple[str, ...], ASSUMPTIONS["keycloak_wrong_secret_error"].value)))
_DOCUMENTED_CREATE: Final = 201


_ERRORS: Final[Mapping[int, type[HarborAPIError]]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    422: ValidationFailed,
    429: RateLimited,
}

# Transport errors raised before the request left: retrying them can never repeat a write.
_NEVER_SENT: Final = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)
# Creates whose refusal after a retry may be the caller's own earlier attempt (a locker it now holds).
_RECOVERABLE: Final = frozenset({HoldKind.RESERVATION, HoldKind.DROPOFF_TOKEN, HoldKind.PICKUP_TOKEN})


class _RefusedAfterRetry(Exception):
    """A 403/409 that followed an attempt which may have landed; carries the refusal."""

    def __init__(self, error: HarnessError) -> None:
        super().__init__(str(error))
        self.error = error


def _detail(response: httpx.Response) -> Any:
    """Harbor's ``detail`` (``error_detail_shape`` [S]: a message or FastAPI's list), or Keycloak's error."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200] or None
    if isinstance(body, Mapping):
        if "detail" in body:
            return body["detail"]
        if "error" in body:  # Keycloak: {"error": ..., "error_description": ...}
            return body.get("error_description") or body["error"]
    return body


def describe_detail(detail: Any) -> str:
    """Harbor's ``detail`` in words: a message, or FastAPI's list of field errors."""
    if detail is None or detail == "":
        return "no detail given"
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, Mapping):
                where = ".".join(str(p) for p in item.get("loc", ()))
                parts.append(f"{where}: {item.get('msg', '?')}" if where else str(item.get("msg", "?")))
            else:
                parts.append(str(item))
        return "; ".join(parts) or "no detail given"
    return str(detail)


def error_for_response(response: httpx.Response, where: str) -> HarnessError:
    """The harness exception for an error answer: method, path, status and Harbor's detail."""
    status = response.status_code
    detail = _detail(response)
    method, _, path = where.partition(" ")
    message = f"{where} answered {status} {response.reason_phrase}: {describe_detail(detail)}"
    if status >= 500:
        return ServerError(message, status_code=status, method=method, path=path)
    if status == 429:
        return RateLimited(
            message,
            retry_after=_retry_after_seconds(response),
            status_code=status,
            detail=detail,
            method=method,
            path=path,
        )
    error = _ERRORS.get(status, HarborAPIError)
    return error(message, status_code=status, detail=detail, method=method, path=path)


def _keycloak_error(response: httpx.Response) -> str | None:
    """Keycloak's ``error`` code (``invalid_client``, ``unauthorized_client``, ...), if the body has one."""
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, str) else None


def _says_expired(response: httpx.Response) -> bool:
    return "expired" in describe_detail(_detail(response)).lower()


def _json(response: httpx.Response, where: str) -> Any:
    try:
        return response.json()
    except ValueError:
        raise ProductDefect(
            f"{where} answered {response.status_code} with a body that is not JSON", check="response_shape"
        ) from None


class HarborSession:
    """The client's state and rules, free of I/O: tokens, retries, guard, holds, parsing."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None = None,
        retry: RetryPolicy | None = None,
        holds: Holds | None = None,
        redactor_: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if settings.target.api_url is None or settings.target.token_url is None:
            raise UsageError(
                f"target {settings.target.name} has no URL yet: start the virtual sandbox first "
                "(locker-harness smoke does this for you)"
            )
        self.settings = settings
        self.base_url: str = settings.target.api_url
        self.token_url: str = settings.target.token_url
        self.credentials = credentials if credentials is not None else settings.credentials()
        self.retry = retry if retry is not None else DEFAULT_RETRY
        self.holds = holds if holds is not None else NO_HOLDS
        self.redactor = redactor_ if redactor_ is not None else redactor()
        # The secret alone, and as HTTP Basic would carry it with the client id.
        self.redactor.register_credentials(self.credentials.client_id, self.credentials.client_secret)
        self._clock = clock
        self._tokens: dict[Scope, _Bearer] = {}
        #: Attempts that failed and were retried (a 5xx, a 408 or 429, no answer): counted, and the
        #: newest described, so a step that passed after them can say so.
        self.retries = 0
        self._retried: collections.deque[str] = collections.deque(maxlen=_RETRIED_KEPT)

    # -- exchanges -------------------------------------------------------------------------------

    def exchange(self, call: Call[T], *, recover: bool = True) -> Exchange[T]:
        """Run ``call``: the production guard, the holds hook, then the request itself."""
        if call.writes is not None:
            self.settings.check_writes_allowed(call.writes)
        hold = call.hold
        if hold is not None:
            self.holds.before(hold)
        try:
            result = yield from self._request(call)
        except _RefusedAfterRetry as refused:
            if hold is None or not recover or hold.action is not HoldAction.CREATE or hold.kind not in _RECOVERABLE:
                if hold is not None:
                    self.holds.after(hold, None, refused.error)
                raise refused.error from None
            return (yield from self._recover(call, hold, refused.error))
        except BaseException as exc:
            if hold is not None:
                self.holds.after(hold, None, exc)
            raise
        if hold is not None:
            self.holds.after(hold, result, None)
        return result

    def authenticate(self, scope: Scope = Scope.SERVICE_PROVIDER) -> Exchange[None]:
        """Fetch a bearer token for ``scope`` now (if the cached one is not fresh)."""
        yield from self._bearer(scope)

    def _recover(self, call: Call[T], hold: Hold, refusal: HarnessError) -> Exchange[T]:
        """``call`` (a create) was refused after an attempt that may have landed: is the refusal our own doing?

        ``hold.after`` is called here exactly once for ``hold``, whatever the outcome.
        """
        where = f"{call.method} {call.path}"
        try:
            mine = yield from self._request(assigned_lockers())
        except _RefusedAfterRetry as refused:
            mine, cause = None, refused.error
        except HarnessError as exc:
            mine, cause = None, exc
        if mine is None:
            self.holds.after(hold, None, AnswerLost(f"{where}: an earlier attempt may have landed ({cause})"))
            refusal.add_note(f"an earlier attempt of {where} may have landed; what the caller holds could not be read")
            raise refusal
        held = next((lk for lk in mine if lk.id == hold.locker_id and lk.tower_id == hold.tower_id), None)
        if held is None:  # nothing of ours there: the refusal is the target's word
            self.holds.after(hold, None, refusal)
            raise refusal
        if hold.kind is not HoldKind.RESERVATION or held.status is not LockerStatus.RESERVED:
            # A token's create leaves the locker ours either way: whether a token was made is unknown.
            self.holds.after(hold, None, AnswerLost(f"{where}: an earlier attempt may have made a token"))
            refusal.add_note(
                f"an earlier attempt of {where} may have landed (its answer was lost); "
                f"locker {held.id} is the caller's, {held.status.wire_name}"
            )
            raise refusal
        # Our own earlier attempt reserved it. Its id was in the lost answer, so give it back and reserve again.
        self.holds.after(hold, held, None)
        try:
            yield from self.exchange(release_locker(held.tower_id, held.id))
        except HarnessError as exc:
            refusal.add_note(
                f"an earlier attempt of {where} reserved locker {held.id} (its answer was lost); "
                f"giving it back failed: {exc}"
            )
            raise refusal from None
        return (yield from self.exchange(call, recover=False))

    def _request(self, call: Call[T]) -> Exchange[T]:
        """One call with retries and one token renewal; ``_RefusedAfterRetry`` for a 403/409 that
        followed an attempt which may have landed."""
        where = f"{call.method} {call.path}"
        self.redactor.register_fields(call.data)  # a login's password: hidden before it is sent
        renewed = False
        landed = False
        while True:
            headers = {"Accept": "application/json"}
            if call.bearer:
                headers["Authorization"] = f"Bearer {(yield from self._bearer(call.scope))}"
            response, maybe = yield from self._send(
                Send(call.method, call.path, where, headers=headers, json=call.json, data=call.data, params=call.params)
            )
            landed = landed or maybe
            if response.status_code == 401 and call.bearer and not renewed and _says_expired(response):
                # The token expired under us (clock skew, a long pause): renew it once and retry.
                self._tokens.pop(call.scope, None)
                renewed = True
                continue
            if not response.is_success:
                error = error_for_response(response, where)
                if landed and response.status_code in (403, 409):
                    raise _RefusedAfterRetry(error)
                raise error
            result = call.parse(Reader(_json(response, where), where, assumed=self.settings.assume))
            self.redactor.register_fields(result)  # a token's payload_auth, a session's seed: hidden from now on
            if call.status == _DOCUMENTED_CREATE:
                # 201 is our guess for a create: any 2xx is read, and the code seen is an observation.
                record("create_status", response.status_code, f"{where} answered {response.status_code}")
            elif response.status_code != call.status:
                raise ProductDefect(
                    f"{where} answered {response.status_code} {response.reason_phrase}; "
                    f"the API document gives {call.status}",
                    check="status_code_conformance",
                )
            return result

    def _send(self, send: Send) -> Exchange[tuple[httpx.Response, bool]]:
        """One request with the retry policy; raises once the attempts are spent.

        Returns the answer, and whether an earlier attempt may have reached the application (its
        answer lost to a timeout or a dropped connection, or a 5xx): a retried write may meet itself.
        """
        policy = self.retry
        landed = False
        for attempt in range(1, policy.attempts + 1):
            last = attempt == policy.attempts
            outcome = yield send
            if isinstance(outcome, httpx.RequestError):
                landed = landed or not isinstance(outcome, _NEVER_SENT)
                if last:
                    host = self._host(send)
                    raise TargetUnreachable(
                        f"{send.where}: no answer from {host} after {attempt} attempt(s) "
                        f"({type(outcome).__name__}: {outcome or 'no detail'})",
                        url=host,
                    )
                self._note_retry(send, f"had no answer ({type(outcome).__name__})", attempt)
                yield Sleep(policy.delay(attempt))
                continue
            if outcome is None:
                raise RuntimeError("the driver sent no outcome for a Send")
            status = outcome.status_code
            if status == 429:
                if last:
                    raise error_for_response(outcome, send.where)
                self._note_retry(send, "answered 429 Too Many Requests", attempt)
                yield Sleep(policy.retry_after(outcome, attempt))
                continue
            if status == 408 or status >= 500:
                if last:
                    if status == 408:
                        host = self._host(send)
                        raise TargetUnreachable(
                            f"{send.where}: {host} timed out the request (408) {attempt} time(s)", url=host
                        )
                    raise error_for_response(outcome, send.where)
                landed = True
                self._note_retry(send, f"answered {status} {outcome.reason_phrase}", attempt)
                yield Sleep(policy.delay(attempt))
                continue
            return outcome, landed
        raise AssertionError("unreachable: the last attempt returns or raises")

    def retried_since(self, mark: int) -> tuple[str, ...]:
        """What was retried since ``retries`` was ``mark`` (the newest few, if there were many)."""
        count = min(self.retries - mark, len(self._retried))
        return tuple(self._retried)[len(self._retried) - count :] if count > 0 else ()

    def _note_retry(self, send: Send, what: str, attempt: int) -> None:
        self.retries += 1
        self._retried.append(f"{send.where} {what} (attempt {attempt} of {self.retry.attempts})")

    def _host(self, send: Send) -> str:
        """The origin a request went to: the API's, or the token endpoint's (another host on Harbor)."""
        url = httpx.URL(send.url)
        return f"{url.scheme}://{url.netloc.decode()}" if url.is_absolute_url else self.base_url

    # -- bearer tokens ---------------------------------------------------------------------------

    def _bearer(self, scope: Scope) -> Exchange[str]:
        cached = self._tokens.get(scope)
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        where = f"POST {self.token_url}"
        sent_at = self._clock()
        response, _ = yield from self._send(
            Send(
                "POST",
                self.token_url,
                where,
                headers={"Accept": "application/json"},
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.credentials.client_id,
                    "client_secret": self.credentials.client_secret.reveal(),
                    "scope": scope.value,
                },
            )
        )
        status = response.status_code
        if status in (400, 401, 403):
            detail = describe_detail(_detail(response))
            error = _keycloak_error(response)
            if error is not None:
                record("keycloak_wrong_secret_error", error in _REFUSED_CLIENT, f"{where} answered {status} {error}")
            said = f"{error}: {detail}" if error is not None and error not in detail else detail
            raise CredentialsRefused(
                f"the token endpoint of {self.settings.target.name} refused client "
                f"{self.credentials.client_id!r} ({status}: {said}): check HARBOR_CLIENT_ID and HARBOR_CLIENT_SECRET",
                status_code=status,
                detail=detail,
                method="POST",
                path=self.token_url,
            )
        if status in (404, 405):
            raise UsageError(
                f"{where} answered {status}: {self.settings.target.name} serves no token endpoint there, "
                "check the target or HARBOR_TOKEN_URL"
            )
        if not response.is_success:
            raise error_for_response(response, where)
        body = Reader(_json(response, where), where, assumed=self.settings.assume)
        token = body["access_token"].text()
        if not token:
            raise body["access_token"].defect("should not be empty")
        lifetime = body["expires_in"].integer(minimum=1)
        record("token_endpoint_answer", True, where)
        # Keycloak's answer carries token_type [S docs]; that every token endpoint does is [I].
        record("token_type_field", body.has("token_type"), where)
        token_type = body["token_type"].text() if body.has("token_type") else "Bearer"
        if token_type.lower() != "bearer":
            raise body["token_type"].defect(f"should be Bearer, got {token_type!r}")
        self.redactor.register(token)
        margin = min(_REFRESH_MARGIN, lifetime / 2)
        bearer = _Bearer(token, refresh_at=sent_at + lifetime - margin)
        self._tokens[scope] = bearer
        return bearer.token
