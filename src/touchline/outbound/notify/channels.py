"""Delivering one notification on the channels that leave touchline: webhook posts (Slack-compatible
and generic, with httpx) and email to the user through the workspace's relay.

A webhook URL is a user-typed host: before every connection it is checked as mailbox hosts are
(`kit.net.AddressPolicy`: resolved once, every address judged, then the connection pinned to those
addresses so a changing DNS answer cannot lead it elsewhere). Only https is taken, except plain http
to loopback when the operator allows private webhook hosts. Redirects are not followed: a redirect
could lead where the check would have refused.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

import httpx

from touchline.config import Settings, relay_configured
from touchline.kit.errors import InvalidInputError
from touchline.kit.net import (
    AddressKind,
    AddressPolicy,
    CheckedTarget,
    Resolver,
    address_kind,
    system_resolver,
)
from touchline.outbound.compose.mime import Mailbox, OutgoingEmail, build_message
from touchline.outbound.notify import messages
from touchline.outbound.notify.messages import Notification
from touchline.outbound.send.contract import DeliveryError, Outgoing
from touchline.outbound.send.delivery import relay_account
from touchline.outbound.send.smtp import SmtpSender

WEBHOOK_TIMEOUT_SECONDS: Final = 5.0
_PRIVATE_HINT: Final = (
    "an operator can allow private webhook hosts with TOUCHLINE_ALLOW_PRIVATE_WEBHOOK_HOSTS"
)


class ChannelError(Exception):
    """The channel did not take the notification. `temporary` ones (timeouts, lost connections, 429
    and 5xx answers, 4xx SMTP replies) are tried again later; others fail the delivery at once."""

    def __init__(self, reason: str, *, temporary: bool, retry_after_seconds: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.temporary = temporary
        self.retry_after_seconds = retry_after_seconds


@dataclass(frozen=True, slots=True)
class WebhookTarget:
    """A checked webhook URL: where to connect (pinned addresses) and what to ask for there."""

    url: str
    scheme: str
    checked: CheckedTarget
    path: str
    """The path and query string, as typed."""

    @property
    def host_header(self) -> str:
        host = self.checked.host
        shown = f"[{host}]" if ":" in host else host
        default = 443 if self.scheme == "https" else 80
        return shown if self.checked.port == default else f"{shown}:{self.checked.port}"

    def url_for(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
        shown = f"[{address}]" if address.version == 6 else str(address)
        return f"{self.scheme}://{shown}:{self.checked.port}{self.path}"


def webhook_policy(settings: Settings, resolver: Resolver = system_resolver) -> AddressPolicy:
    return AddressPolicy(
        allow_private=settings.allow_private_webhook_hosts, private_hint=_PRIVATE_HINT, resolver=resolver
    )


def check_webhook_url(url: str, policy: AddressPolicy) -> WebhookTarget:
    """The URL's target when a notification may be posted there; InvalidInputError saying why not."""
    url = url.strip()
    if not url.isascii() or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise InvalidInputError("a webhook URL is a plain URL without spaces or control characters")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InvalidInputError(f"a webhook URL starts with https:// and names a host; {url!r} does not")
    if parts.username is not None or parts.password is not None:
        raise InvalidInputError("a webhook URL carries no user name or password")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInputError(f"the port of {url!r} is not a port number") from None
    checked = policy.check(parts.hostname, port)
    if parts.scheme == "http" and not all(
        address_kind(address) is AddressKind.LOOPBACK for address in checked.addresses
    ):
        raise InvalidInputError(
            "a webhook URL must use https (plain http only to this machine's loopback address, "
            "when the operator allows private webhook hosts)"
        )
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return WebhookTarget(url=url, scheme=parts.scheme, checked=checked, path=path)


def post(target: WebhookTarget, body: bytes, headers: dict[str, str]) -> None:
    """POST `body` as JSON to the checked target, within WEBHOOK_TIMEOUT_SECONDS; raises ChannelError."""
    request_headers = {
        "Content-Type": "application/json",
        "User-Agent": "touchline-notifications",
        "Host": target.host_header,
        **headers,
    }
    last: ChannelError = ChannelError(f"{target.checked.host} has no address", temporary=True)
    with httpx.Client(timeout=WEBHOOK_TIMEOUT_SECONDS, follow_redirects=False, trust_env=False) as client:
        for address in target.checked.addresses:
            try:
                response = client.post(
                    target.url_for(address),
                    content=body,
                    headers=request_headers,
                    # TLS checks the certificate against the name typed, not the address connected to.
                    extensions={"sni_hostname": target.checked.host},
                )
            except httpx.TimeoutException:
                raise ChannelError(
                    f"{target.checked.host} did not answer within {WEBHOOK_TIMEOUT_SECONDS:g} seconds",
                    temporary=True,
                ) from None
            except httpx.ConnectError as error:
                last = ChannelError(f"cannot connect to {target.checked.host}: {error}", temporary=True)
                continue  # the next address, as CheckedTarget.connect does
            except httpx.TransportError as error:
                reason = f"the connection to {target.checked.host} failed: {error}"
                raise ChannelError(reason, temporary=True) from error
            _judge(response)
            return
    raise last


def _judge(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    reason = f"the webhook answered {status} {response.reason_phrase}".rstrip()
    if status == 429 or status >= 500:
        raise ChannelError(reason, temporary=True, retry_after_seconds=_retry_after(response))
    if 300 <= status < 400:
        raise ChannelError(f"{reason}: redirects are not followed", temporary=False)
    raise ChannelError(reason, temporary=False)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


def send_email(settings: Settings, address: str, notification: Notification, now: datetime) -> None:
    """The notification by email to `address` (the user's own), through the workspace's relay."""
    if not relay_configured(settings):
        raise ChannelError("no SMTP relay is configured (TOUCHLINE_RELAY_SMTP_HOST)", temporary=False)
    built = build_message(
        OutgoingEmail(
            sender=Mailbox(address, "touchline"),
            to=(Mailbox(address),),
            subject=messages.title(notification),
            text=messages.text(notification) + "\n",
            date=now.astimezone(UTC),
        ),
        address.rpartition("@")[2] or "touchline.invalid",
    )
    sender = SmtpSender(relay_account(settings))
    try:
        sender.deliver(Outgoing(built.raw, address, built.recipients, built.message_id))
    except DeliveryError as error:
        raise ChannelError(error.reason, temporary=error.temporary) from error
    finally:
        sender.close()
