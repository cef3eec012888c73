"""What the Gmail and Graph providers share: an authorised HTTP client and status translation.

Only the answers both APIs give the same meaning are translated here (401, 429, 5xx, network
failures); each provider reads its own 403, 404 and 410 first.
"""

from __future__ import annotations

import functools
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Self, TypeVar

import httpx

from touchline.kit.backoff import retry_delay
from touchline.kit.budget import UnitBudget
from touchline.mailboxes.providers.base import (
    AccessTokenSource,
    AuthError,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    TransientError,
)

# Used when a throttling answer carries no Retry-After; short, because the caller backs off further
# on repeated throttling and a mailbox should not sit idle for long on a missing header.
DEFAULT_RETRY_AFTER_SECONDS = 5.0
# Bodies quoted in error messages are cut short: they are for a log line, not for a person.
_ERROR_BODY_LIMIT = 300

# Failures that happen before a request is on the wire (connecting, waiting for a pooled
# connection, writing it): the server cannot have acted on it. Every other transport failure comes
# after the request was written, while waiting for or reading the answer.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.WriteError,
    httpx.WriteTimeout,
)

QueryParams = Mapping[str, str | int | Sequence[str]]

log = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Pacing:
    """How a client waits when a server throttles it: which clock, sleep and randomness it uses (a
    test gives a fake clock, so a simulated day runs without sleeping) and how long it keeps trying
    one request before giving up with ``RateLimited``, leaving the rest to the sync's scheduler."""

    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    random: Callable[[], float] = random.random
    max_retries: int = 6
    base_delay_seconds: float = 1.0
    max_delay_seconds: float = 64.0
    # A request that would have to wait longer than this in all is handed back as RateLimited.
    max_total_wait_seconds: float = 180.0


@dataclass
class MailboxLimits:
    """What every client of one mailbox in this process shares: its quota budget (when the API
    counts quota units) and a bound on the requests it has in flight at once."""

    concurrency: threading.BoundedSemaphore
    budget: UnitBudget | None = None


_limits_by_mailbox: dict[str, MailboxLimits] = {}
_limits_lock = threading.Lock()


def shared_limits(
    key: str, *, max_concurrency: int, units_per_minute: float | None, pacing: Pacing
) -> MailboxLimits:
    """The limits of the mailbox named ``key`` (provider and mailbox id), made on first use: a
    mailbox's quota and concurrency are the server's per mailbox, not per sync or per thread."""
    with _limits_lock:
        limits = _limits_by_mailbox.get(key)
        if limits is None:
            budget = UnitBudget(units_per_minute, pacing.clock) if units_per_minute else None
            limits = MailboxLimits(threading.BoundedSemaphore(max_concurrency), budget)
            _limits_by_mailbox[key] = limits
        return limits


def is_throttled(response: httpx.Response) -> bool:
    return response.status_code == 429 or (response.status_code == 503 and "Retry-After" in response.headers)


def stated_retry_after(response: httpx.Response) -> float | None:
    """The server's Retry-After in seconds, or None when it did not say."""
    if "Retry-After" not in response.headers:
        return None
    return retry_after_seconds(response)


class RestClient:
    """An httpx client that sends a bearer token and, on 401, refreshes it once and tries again.

    With ``limits`` every request first spends its cost (``cost(url)`` quota units) from the
    mailbox's budget, waiting when the budget is empty, and holds one of the mailbox's concurrency
    slots while it is on the wire. A throttled read (``throttled(response)``) is tried again after
    an exponential, jittered backoff that honours Retry-After, so one 429 loses nothing fetched so
    far; only once ``pacing`` gives up is the throttled answer returned to the caller.
    """

    def __init__(
        self,
        service_name: str,
        base_url: str,
        token_source: AccessTokenSource,
        *,
        timeout_seconds: float = 30.0,
        pacing: Pacing | None = None,
        limits: MailboxLimits | None = None,
        cost: Callable[[str], float] | None = None,
        throttled: Callable[[httpx.Response], bool] = is_throttled,
        retry_after: Callable[[httpx.Response], float | None] = stated_retry_after,
    ) -> None:
        self.service_name = service_name
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self._tokens = token_source
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout_seconds, verify=ssl_context())
        self._pacing = pacing or Pacing()
        self._limits = limits
        self._cost = cost
        self._throttled = throttled
        self._retry_after = retry_after

    def get(
        self,
        url: str,
        *,
        params: QueryParams | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        return self._retried(url, lambda token: self._send(url, token, params, headers))

    def _retried(self, url: str, attempt: Callable[[str], httpx.Response]) -> httpx.Response:
        """``attempt`` (given a token), paced, authorised, and tried again while throttled."""
        waited = 0.0
        failed_attempts = 0
        while True:
            response = self._paced(url, lambda: self._authorised(attempt))
            if not self._throttled(response) or failed_attempts >= self._pacing.max_retries:
                return response
            failed_attempts += 1
            delay = retry_delay(
                failed_attempts,
                retry_after_seconds=self._retry_after(response),
                base_seconds=self._pacing.base_delay_seconds,
                max_seconds=self._pacing.max_delay_seconds,
                random=self._pacing.random,
            )
            if waited + delay > self._pacing.max_total_wait_seconds:
                return response
            log.info(
                "%s throttled a request (HTTP %s); trying again in %.1f s",
                self.service_name,
                response.status_code,
                delay,
            )
            waited += delay
            self._pacing.sleep(delay)

    def get_limited(
        self, url: str, *, headers: Mapping[str, str] | None = None, max_bytes: int
    ) -> httpx.Response | None:
        """A GET whose body is read only up to ``max_bytes``: None when the body is larger."""
        too_large = False

        def send(token: str) -> httpx.Response:
            nonlocal too_large
            too_large = False
            request = self._http.build_request(
                "GET", url, headers={"Authorization": f"Bearer {token}", **(headers or {})}
            )
            try:
                response = self._http.send(request, stream=True)
                try:
                    if response.status_code == 200:
                        body = bytearray()
                        for chunk in response.iter_bytes():
                            body += chunk
                            if len(body) > max_bytes:
                                too_large = True
                                break
                        return httpx.Response(
                            response.status_code,
                            headers=response.headers,
                            content=bytes(body),
                            request=request,
                        )
                    response.read()
                finally:
                    response.close()
            except httpx.TransportError as error:
                raise TransientError(f"{self.service_name} could not be reached: {error}") from error
            return response

        response = self._retried(url, send)
        return None if too_large else response

    def _paced(self, url: str, request: Callable[[], httpx.Response]) -> httpx.Response:
        if self._limits is None:
            return request()
        if self._limits.budget is not None and self._cost is not None:
            wait = self._limits.budget.reserve(self._cost(url))
            if wait > 0:
                self._pacing.sleep(wait)
        with self._limits.concurrency:
            return request()

    def post(self, url: str, *, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        """One POST that must not be repeated blindly (it sends mail).

        A 401 means the server did nothing, so the refreshed token is tried once, as for reads. A
        failure before the request was written is a ``TransientError``; once it was written, a broken
        connection raises ``OutcomeUnknown``: the server may have acted on it.
        """
        return self._paced(
            url, lambda: self._authorised(lambda token: self._post(url, token, content, headers))
        )

    def _authorised(self, attempt: Callable[[str], httpx.Response]) -> httpx.Response:
        token = self._tokens.access_token()
        response = attempt(token)
        if response.status_code == 401:
            token = self._tokens.refresh_rejected(token)
            response = attempt(token)
            if response.status_code == 401:
                raise AuthError(f"{self.service_name} refused a freshly refreshed access token")
        return response

    def _send(
        self,
        url: str,
        token: str,
        params: QueryParams | None,
        headers: Mapping[str, str] | None,
    ) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", **(headers or {})}
        try:
            return self._http.get(url, params=params, headers=all_headers)
        except httpx.TransportError as error:
            raise TransientError(f"{self.service_name} could not be reached: {error}") from error

    def _post(self, url: str, token: str, content: bytes, headers: Mapping[str, str]) -> httpx.Response:
        all_headers = {"Authorization": f"Bearer {token}", **headers}
        try:
            return self._http.post(url, content=content, headers=all_headers)
        except _NOT_SENT as error:
            raise TransientError(f"{self.service_name} could not be reached: {error}") from error
        except httpx.TransportError as error:
            raise OutcomeUnknown(
                f"the connection to {self.service_name} broke before it answered ({type(error).__name__})"
            ) from error

    def close(self) -> None:
        self._http.close()


@functools.cache
def ssl_context() -> ssl.SSLContext:
    """One verifying TLS context for every client: loading the CA bundle takes tens of milliseconds,
    and each sync opens fresh clients. A context is safe to share between clients and threads."""
    return httpx.create_ssl_context()


def json_object(response: httpx.Response, service_name: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as error:
        raise TransientError(f"{service_name} sent a body that is not JSON") from error
    if not isinstance(body, dict):
        raise TransientError(f"{service_name} sent JSON that is not an object")
    return body


def raise_for_status(response: httpx.Response, service_name: str) -> None:
    """Translate the answers every REST provider means the same way; return quietly on success."""
    status = response.status_code
    if status < 400:
        return
    if status == 429 or (status == 503 and "Retry-After" in response.headers):
        raise RateLimited(
            f"{service_name} is throttling requests (HTTP {status})", retry_after_seconds(response)
        )
    if status >= 500 or status == 408:
        raise TransientError(f"{service_name} answered HTTP {status}: {response.text[:_ERROR_BODY_LIMIT]}")
    if status == 401:
        raise AuthError(f"{service_name} refused the access token")
    raise ProviderError(f"{service_name} answered HTTP {status}: {response.text[:_ERROR_BODY_LIMIT]}")


def raise_for_send_status(response: httpx.Response, service_name: str, reason: str) -> None:
    """Translate the answer to a send request; ``reason`` is the provider's own words, one short line.

    Unlike ``raise_for_status`` no body is quoted: an answer to a send may echo the message.
    """
    status = response.status_code
    if status < 400:
        return
    if status == 429 or (status == 503 and "Retry-After" in response.headers):
        raise RateLimited(
            f"{service_name} is throttling sending (HTTP {status}: {reason})", retry_after_seconds(response)
        )
    if status >= 500 or status == 408:
        raise TransientError(f"{service_name} answered HTTP {status}: {reason}")
    raise ProviderError(f"{service_name} refused the message (HTTP {status}): {reason}")


def one_line(text: str, limit: int = 200) -> str:
    """A provider's message made safe for a log line or a status shown to a person."""
    flattened = " ".join(text.split())
    return flattened if len(flattened) <= limit else flattened[: limit - 1] + "\u2026"


def retry_after_seconds(response: httpx.Response) -> float:
    """Retry-After is either delay-seconds or an HTTP date (RFC 9110 section 10.2.3)."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return DEFAULT_RETRY_AFTER_SECONDS
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())


def bounded_map(
    function: Callable[[ItemT], ResultT], items: Iterable[ItemT], max_concurrency: int
) -> list[ResultT]:
    """Apply ``function`` to ``items`` with at most ``max_concurrency`` requests in flight, in order.

    The first failure is raised once the requests already sent have finished; requests not yet
    started are cancelled, so a throttled mailbox is not hammered further.
    """
    item_list = list(items)
    if max_concurrency <= 1 or len(item_list) <= 1:
        return [function(item) for item in item_list]
    executor = ThreadPoolExecutor(max_workers=min(max_concurrency, len(item_list)))
    try:
        futures = [executor.submit(function, item) for item in item_list]
        return [future.result() for future in futures]
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


class RestMailboxProvider:
    """What the Gmail and Graph providers share: one REST client, bounded concurrency, and closing.

    ``on_close`` runs when the provider is closed: the caller hands over what it opened for the
    token source (an ``OAuthFlow``'s connections), so one ``close()`` releases everything.
    """

    service_name: str
    default_api_base_url: str

    # Quota units each user may spend a minute, when the API counts them (Gmail).
    units_per_minute: float | None = None

    def __init__(
        self,
        token_source: AccessTokenSource,
        *,
        api_base_url: str | None = None,
        max_concurrency: int = 4,
        timeout_seconds: float = 30.0,
        on_close: Callable[[], None] | None = None,
        pacing: Pacing | None = None,
        mailbox_key: str | None = None,
        units_per_minute: float | None = None,
    ) -> None:
        pacing = pacing or Pacing()
        if units_per_minute is not None:
            self.units_per_minute = units_per_minute
        # Without a mailbox to share them with (a one-off call), the limits are this provider's own.
        self.limits = (
            shared_limits(
                f"{self.service_name}:{mailbox_key}",
                max_concurrency=max_concurrency,
                units_per_minute=self.units_per_minute,
                pacing=pacing,
            )
            if mailbox_key is not None
            else MailboxLimits(
                threading.BoundedSemaphore(max_concurrency),
                UnitBudget(self.units_per_minute, pacing.clock) if self.units_per_minute else None,
            )
        )
        self._rest = RestClient(
            self.service_name,
            api_base_url or self.default_api_base_url,
            token_source,
            timeout_seconds=timeout_seconds,
            pacing=pacing,
            limits=self.limits,
            cost=self.request_cost,
            throttled=self.is_throttled,
            retry_after=self.stated_retry_after,
        )
        self._max_concurrency = max_concurrency
        self._on_close = on_close

    def request_cost(self, url: str) -> float:
        """Quota units a request to ``url`` costs; nothing for APIs without quota units."""
        return 0.0

    def is_throttled(self, response: httpx.Response) -> bool:
        return is_throttled(response)

    def stated_retry_after(self, response: httpx.Response) -> float | None:
        return stated_retry_after(response)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._rest.close()
        finally:
            if self._on_close is not None:
                self._on_close()
