"""``HarborClient`` and ``AsyncHarborClient``: thin drivers of the sans-IO core.

Each performs the core's actions (send a request, sleep) its own way and nothing else; every
operation is one line here, made from its builder in ``_operations``, so the two clients cannot
drift apart. Both take ``transport=``: tests pass ``httpx.MockTransport`` or (async only)
``httpx.ASGITransport(app=...)``; the sync client reaches an in-process sandbox through the
sandbox's uvicorn thread, like any other URL.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, Self, TypeVar, cast

import httpx

from harness._version import __version__
from harness.api import _operations as ops
from harness.api._call import Call, Scope
from harness.api._core import Action, Exchange, HarborSession, Outcome, RetryPolicy, Send
from harness.api._holds import Holds
from harness.api._wire import async_guard_hooks, guard_hooks, tls_context
from harness.config import Credentials, Settings
from harness.hosts import trusts_env_proxies
from harness.redaction import Redactor

__all__ = ["AsyncHarborClient", "HarborClient"]

P = ParamSpec("P")
T = TypeVar("T")


def _build(http: httpx.Client | httpx.AsyncClient, send: Send) -> httpx.Request:
    return http.build_request(
        send.method,
        send.url,
        headers=dict(send.headers),
        json=send.json,
        data=dict(send.data) if send.data is not None else None,
        params=dict(send.params) if send.params is not None else None,
    )


def _dropped(request: httpx.Request, exc: ConnectionError) -> httpx.RequestError:
    """An in-process app (``ASGITransport``) that dropped the connection raises a plain
    ``ConnectionError``; over a socket the same drop is httpx's ``RemoteProtocolError``."""
    return httpx.RemoteProtocolError(f"the server dropped the connection without an answer ({exc})", request=request)


def _timeout(settings: Settings) -> httpx.Timeout:
    return httpx.Timeout(settings.timeout, connect=settings.connect_timeout)


_HEADERS = {"User-Agent": f"locker-harness/{__version__}"}


class _Base:
    """What both clients share: the session (state and rules) and the context-manager protocol."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None,
        retry: RetryPolicy | None,
        holds: Holds | None,
        redactor: Redactor | None,
        clock: Callable[[], float],
    ) -> None:
        self.session = HarborSession(
            settings, credentials=credentials, retry=retry, holds=holds, redactor_=redactor, clock=clock
        )

    @property
    def settings(self) -> Settings:
        return self.session.settings

    @property
    def base_url(self) -> str:
        return self.session.base_url


def _sync(op: Callable[P, Call[T]]) -> Callable[Concatenate[HarborClient, P], T]:
    def method(self: HarborClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return self.run(op(*args, **kwargs))

    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    return method


def _async(op: Callable[P, Call[T]]) -> Callable[Concatenate[AsyncHarborClient, P], Coroutine[Any, Any, T]]:
    async def method(self: AsyncHarborClient, /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await self.run(op(*args, **kwargs))

    method.__name__ = method.__qualname__ = op.__name__
    method.__doc__ = op.__doc__
    return method


class HarborClient(_Base):
    """A blocking client of Harbor's REST and SDK API (safe under gevent for the load users)."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None = None,
        transport: httpx.BaseTransport | None = None,
        retry: RetryPolicy | None = None,
        holds: Holds | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, credentials=credentials, retry=retry, holds=holds, redactor=redactor, clock=clock)
        self._http = httpx.Client(
            base_url=self.session.base_url,
            transport=transport,
            timeout=_timeout(settings),
            headers=_HEADERS,
            event_hooks=guard_hooks(settings.wire_policy()),
            trust_env=trusts_env_proxies(settings.target.api_url, settings.target.token_url),
            verify=tls_context(),
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def run(self, call: Call[T]) -> T:
        """Run one operation built by hand (the named methods cover the API document)."""
        return self._drive(self.session.exchange(call))

    def authenticate(self, scope: Scope = Scope.SERVICE_PROVIDER) -> None:
        """Fetch (or reuse) the bearer token for ``scope``; the first call of a run."""
        self._drive(self.session.authenticate(scope))

    def _perform(self, action: Action) -> Outcome:
        if not isinstance(action, Send):
            self.session.retry.sleep(action.seconds)
            return None
        request = _build(self._http, action)
        try:
            return self._http.send(request)
        except httpx.RequestError as exc:
            return exc
        except ConnectionError as exc:
            return _dropped(request, exc)

    def _drive(self, exchange: Exchange[T]) -> T:
        try:
            action = exchange.send(None)
            while True:
                try:
                    outcome = self._perform(action)
                except BaseException as exc:  # Ctrl-C mid-request: let the core's holds hook see it
                    action = exchange.throw(exc)
                else:
                    action = exchange.send(outcome)
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            exchange.close()

    login_access_token = _sync(ops.login_access_token)
    login_sdk_access_token = _sync(ops.login_sdk_access_token)
    authorize_sdk_user = _sync(ops.authorize_sdk_user)
    token_info = _sync(ops.token_info)
    list_lockers = _sync(ops.list_lockers)
    get_locker = _sync(ops.get_locker)
    reserve = _sync(ops.reserve)
    cancel_reservation = _sync(ops.cancel_reservation)
    release_locker = _sync(ops.release_locker)
    create_dropoff_token = _sync(ops.create_dropoff_token)
    create_pickup_token = _sync(ops.create_pickup_token)
    tower_availability = _sync(ops.tower_availability)
    assigned_lockers = _sync(ops.assigned_lockers)
    locker_types = _sync(ops.locker_types)
    list_locations = _sync(ops.list_locations)
    get_location = _sync(ops.get_location)
    closest_location = _sync(ops.closest_location)
    location_availability = _sync(ops.location_availability)
    create_dropoff_request = _sync(ops.create_dropoff_request)
    create_pickup_request = _sync(ops.create_pickup_request)
    get_open_request = _sync(ops.get_open_request)
    create_session_token = _sync(ops.create_session_token)
    upload_tower_events = _sync(ops.upload_tower_events)
    tower_commands = _sync(ops.tower_commands)
    ble_services = _sync(ops.ble_services)
    tower_configuration = _sync(ops.tower_configuration)
    reset_tower_events = _sync(ops.reset_tower_events)


class AsyncHarborClient(_Base):
    """The asyncio client: what the flow and the virtual-radio tests use."""

    def __init__(
        self,
        settings: Settings,
        *,
        credentials: Credentials | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        retry: RetryPolicy | None = None,
        holds: Holds | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(settings, credentials=credentials, retry=retry, holds=holds, redactor=redactor, clock=clock)
        self._http = httpx.AsyncClient(
            base_url=self.session.base_url,
            transport=transport,
            timeout=_timeout(settings),
            headers=_HEADERS,
            event_hooks=async_guard_hooks(settings.wire_policy()),
            trust_env=trusts_env_proxies(settings.target.api_url, settings.target.token_url),
            verify=tls_context(),
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def run(self, call: Call[T]) -> T:
        """Run one operation built by hand (the named methods cover the API document)."""
        return await self._drive(self.session.exchange(call))

    async def authenticate(self, scope: Scope = Scope.SERVICE_PROVIDER) -> None:
        """Fetch (or reuse) the bearer token for ``scope``; the first call of a run."""
        await self._drive(self.session.authenticate(scope))

    async def _perform(self, action: Action) -> Outcome:
        if not isinstance(action, Send):
            await self.session.retry.async_sleep(action.seconds)
            return None
        request = _build(self._http, action)
        try:
            return await self._http.send(request)
        except httpx.RequestError as exc:
            return exc
        except ConnectionError as exc:
            return _dropped(request, exc)

    async def _drive(self, exchange: Exchange[T]) -> T:
        try:
            action = exchange.send(None)
            while True:
                try:
                    outcome = await self._perform(action)
                except BaseException as exc:  # cancelled mid-request: let the core's holds hook see it
                    action = exchange.throw(exc)
                else:
                    action = exchange.send(outcome)
        except StopIteration as stop:
            return cast(T, stop.value)
        finally:
            exchange.close()

    login_access_token = _async(ops.login_access_token)
    login_sdk_access_token = _async(ops.login_sdk_access_token)
    authorize_sdk_user = _async(ops.authorize_sdk_user)
    token_info = _async(ops.token_info)
    list_lockers = _async(ops.list_lockers)
    get_locker = _async(ops.get_locker)
    reserve = _async(ops.reserve)
    cancel_reservation = _async(ops.cancel_reservation)
    release_locker = _async(ops.release_locker)
    create_dropoff_token = _async(ops.create_dropoff_token)
    create_pickup_token = _async(ops.create_pickup_token)
    tower_availability = _async(ops.tower_availability)
    assigned_lockers = _async(ops.assigned_lockers)
    locker_types = _async(ops.locker_types)
    list_locations = _async(ops.list_locations)
    get_location = _async(ops.get_location)
    closest_location = _async(ops.closest_location)
    location_availability = _async(ops.location_availability)
    create_dropoff_request = _async(ops.create_dropoff_request)
    create_pickup_request = _async(ops.create_pickup_request)
    get_open_request = _async(ops.get_open_request)
    create_session_token = _async(ops.create_session_token)
    upload_tower_events = _async(ops.upload_tower_events)
    tower_commands = _async(ops.tower_commands)
    ble_services = _async(ops.ble_services)
    tower_configuration = _async(ops.tower_configuration)
    reset_tower_events = _async(ops.reset_tower_events)
