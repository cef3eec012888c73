"""The one typed settings object, read from `TOUCHLINE_*` environment variables."""

from __future__ import annotations

import os
import secrets
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Literal

import platformdirs
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from touchline.kit.files import PRIVATE_DIRECTORY_MODE, PRIVATE_FILE_MODE

SECRET_KEY_FILE = "secret.key"  # noqa: S105 -- a file name, not a secret


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOUCHLINE_", extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(platformdirs.user_data_dir("touchline")))
    database_url: str = ""
    queue_url: str = Field(
        default="",
        description="Empty for the embedded SQLite-backed queue in the data folder; "
        "redis://host:port/db to scale out.",
    )
    secret_key: str = Field(
        default="",
        description="Comma-separated Fernet keys, newest first; generated and stored on first run.",
    )
    base_url: str = "http://127.0.0.1:8000"
    tracking_base_url: str = Field(
        default="",
        description="Where recipients reach the open pixel and click redirects (`touchline tracking` "
        "behind a load balancer, say); empty: base_url",
    )
    apple_relay_ranges_file: Path | None = Field(
        default=None,
        description="Apple Private Relay egress ranges (egress-ip-ranges.csv as Apple publishes it); "
        "opens and clicks from them are labelled as a proxy's. Empty: the sample bundled with touchline",
    )
    inbound_domain: str = "log.touchline.localhost"
    # The log address's SMTP server (`touchline inbound`, and inside `touchline serve`).
    inbound_smtp_enabled: bool = Field(default=True, description="Start it with `touchline serve`")
    inbound_smtp_host: str = "127.0.0.1"
    inbound_smtp_port: int = 2525
    inbound_max_message_bytes: int = Field(
        default=25 * 1024 * 1024, description="Larger messages are refused with 552 (SMTP) or 413 (HTTP)"
    )
    inbound_tls_cert: Path | None = Field(default=None, description="PEM certificate chain; enables STARTTLS")
    inbound_tls_key: Path | None = Field(default=None, description="PEM private key of inbound_tls_cert")
    inbound_dkim_dns_timeout: float = Field(
        default=5.0, description="Seconds per DNS lookup of a DKIM or ARC key or an SPF record"
    )
    inbound_trusted_networks: Annotated[list[IPv4Network | IPv6Network], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated CIDRs of the operator's own mail relays: mail they hand to the log "
        "address's SMTP server counts as authenticated for its From domain",
    )
    inbound_trusted_arc_sealers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated domains of forwarders whose ARC seal is believed: their recorded "
        "DKIM, SPF or DMARC pass for the From domain counts as authenticated",
    )
    in_process_worker: bool = True
    worker_threads: int = 2
    sync_lease_seconds: int = Field(
        default=120,
        ge=3,
        description="How long a worker's hold on a mailbox's sync lasts unless it renews it (every "
        "third of this); another worker takes over a mailbox whose holder died once it runs out, or at "
        "once from the holder's own host",
    )
    sync_stalled_after_seconds: int = Field(
        default=1800,
        ge=60,
        description="A connected mailbox whose sync has not succeeded for this long shows as stalled",
    )
    sync_reader_processes: int = Field(
        default=1,
        ge=0,
        description="Helper processes per worker that parse synced mail beside the storing; "
        "0 parses in the worker itself",
    )
    session_max_age_seconds: int = Field(
        default=14 * 24 * 3600, description="A page login ends this long after it began, whatever happens"
    )
    session_idle_seconds: int = Field(default=12 * 3600, description="A page login unused this long ends")
    invitation_valid_days: int = Field(
        default=7, ge=1, le=90, description="An invitation link an admin sends works this many days"
    )
    password_reset_valid_hours: int = Field(
        default=24, ge=1, le=720, description="A password reset link an admin sends works this many hours"
    )
    # Failed sign-ins and mailbox connects: past these counts within throttle_window_seconds, further
    # attempts wait one minute, then twice as long after each further attempt, up to the maximum.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=30, ge=1)
    mailbox_connects_per_user: int = Field(default=10, ge=1)
    throttle_window_seconds: int = Field(default=15 * 60, ge=1)
    throttle_max_backoff_seconds: int = Field(default=3600, ge=60)
    max_request_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Larger request bodies are refused with 413 (CSV imports and the log address's "
        "HTTP endpoint have their own limits)",
    )
    allow_private_mail_hosts: bool = Field(
        default=False,
        description="Let users connect mailboxes on loopback, private and link-local addresses "
        "(mail servers on the operator's own network)",
    )
    # Set by `touchline demo` for its own IMAP server, so that the Email page says what to connect.
    demo_sent_folder: Path | None = Field(
        default=None, description="Where the demo's sink keeps what it received (set by touchline demo)"
    )
    demo_imap_host: str = "127.0.0.1"
    demo_imap_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="The port of the demo's IMAP server (set by touchline demo)",
    )
    demo_imap_passwords: dict[str, str] = Field(
        default_factory=dict, repr=False, description="Each demo user's IMAP password (set by touchline demo)"
    )
    allow_private_webhook_hosts: bool = Field(
        default=False,
        description="Let users' notification webhooks go to loopback, private and link-local addresses "
        "(and plain http to loopback)",
    )

    # Users without a connected mailbox send through this relay (touchline does not store its copies
    # in any Sent folder, so an email whose outcome is unknown cannot be checked there).
    relay_smtp_host: str = Field(
        default="", description="The workspace's transactional SMTP relay, for users without a mailbox"
    )
    relay_smtp_port: int = Field(default=587, ge=1, le=65535)
    relay_smtp_security: Literal["tls", "starttls", "plain"] = Field(
        default="starttls", description="plain only to this machine"
    )
    relay_smtp_username: str = Field(default="", description="Empty: the relay takes mail without a login")
    relay_smtp_password: str = Field(default="", repr=False)

    # Gmail and Microsoft 365 mailboxes connect through OAuth apps the operator registers with
    # Google and Microsoft; with no client id, the Email tab offers only IMAP for that provider.
    # The redirect URI to register is {base_url}/profile/email/oauth/google/callback (or .../microsoft/...).
    google_client_id: str = ""
    google_client_secret: str = Field(default="", repr=False)
    microsoft_client_id: str = ""
    microsoft_client_secret: str = Field(default="", repr=False)
    microsoft_tenant: str = Field(
        default="common",
        description="common (work and personal accounts), organizations, consumers, or a tenant id",
    )
    # Where the providers live; only tests (fake servers) and unusual clouds change these.
    google_authorization_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"  # noqa: S105 -- an endpoint
    google_revocation_url: str = "https://oauth2.googleapis.com/revoke"
    gmail_api_base_url: str = "https://gmail.googleapis.com/gmail/v1/users/me/"
    # Quota units a Gmail user may spend a minute (Gmail API "Usage limits": 15,000 unless the Cloud
    # project's per-user quota was raised); sync and sending pace themselves to stay within it.
    gmail_quota_units_per_minute: int = Field(15_000, gt=0)
    microsoft_login_base_url: str = "https://login.microsoftonline.com"
    graph_api_base_url: str = "https://graph.microsoft.com/v1.0/"

    # Sending limits per mailbox (rolling windows; 0 means no cap). The Gmail and Exchange Online
    # defaults are the providers' documented limits for Google Workspace and Microsoft 365 accounts.
    send_gmail_messages_per_day: int = Field(default=2000, ge=0)
    send_gmail_recipients_per_message: int = Field(default=100, ge=0)
    send_graph_messages_per_minute: int = Field(default=30, ge=0)
    send_graph_recipients_per_day: int = Field(default=10_000, ge=0)
    send_graph_recipients_per_message: int = Field(default=500, ge=0)
    # IMAP mailboxes send through their SMTP server; the relay is the workspace-wide SMTP relay.
    send_smtp_messages_per_minute: int = Field(default=0, ge=0)
    send_smtp_messages_per_day: int = Field(default=0, ge=0)
    send_smtp_recipients_per_message: int = Field(default=0, ge=0)
    send_relay_messages_per_minute: int = Field(default=0, ge=0)
    send_relay_messages_per_day: int = Field(default=0, ge=0)
    send_relay_recipients_per_message: int = Field(default=0, ge=0)

    @field_validator("inbound_trusted_networks", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]
        return value

    @field_validator("inbound_trusted_arc_sealers", mode="before")
    @classmethod
    def _sealers(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip().lower() for part in value.split(",") if part.strip()]
        return value

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'touchline.db'}"

    @property
    def resolved_tracking_base_url(self) -> str:
        return (self.tracking_base_url or self.base_url).rstrip("/")

    @property
    def uses_redis_queue(self) -> bool:
        return self.queue_url.startswith(("redis://", "rediss://", "unix://"))

    @property
    def queue_file(self) -> Path:
        return self.data_dir / "queue.db"

    @cached_property
    def secret_keys(self) -> list[str]:
        """The configured keys, or the one stored in the data folder (created on first run)."""
        if self.secret_key:
            return [key.strip() for key in self.secret_key.split(",") if key.strip()]
        key_path = self.data_dir / SECRET_KEY_FILE
        if not key_path.exists():
            from cryptography.fernet import Fernet

            self.ensure_data_dir()
            temporary = key_path.with_suffix(f".{secrets.token_hex(4)}.tmp")
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
            with os.fdopen(descriptor, "w") as key_file:
                key_file.write(Fernet.generate_key().decode())
            try:
                # link() fails if another process stored a key first; that key wins.
                key_path.hardlink_to(temporary)
            except FileExistsError:
                pass
            finally:
                temporary.unlink(missing_ok=True)
        return [key_path.read_text().strip()]

    def ensure_data_dir(self) -> None:
        """The data folder, created readable by this user only; an existing one is left as it is."""
        self.data_dir.mkdir(mode=PRIVATE_DIRECTORY_MODE, parents=True, exist_ok=True)


def relay_configured(settings: Settings) -> bool:
    """Whether the operator set a transactional relay: mail of users without a mailbox, notifications
    and account links leave through it."""
    return bool(settings.relay_smtp_host)
