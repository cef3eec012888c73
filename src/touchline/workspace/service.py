"""Workspace behaviour. Every function takes a session and an Actor, may flush, and never commits."""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from touchline.config import Settings
from touchline.kit.addresses import InvalidAddressError, normalise_address
from touchline.kit.backoff import AttemptRun, wait_left
from touchline.kit.crypto import SecretBox, hash_password, new_token, token_digest, verify_password
from touchline.kit.domains import InvalidDomainError, domain_covers, is_free_mail_domain, normalise_domain
from touchline.kit.errors import ConflictError, InvalidInputError, NotFoundError
from touchline.kit.zones import DEFAULT_ZONE, zone_named, zone_or_default, zone_problem
from touchline.models import (
    ApiToken,
    AuditEntry,
    Company,
    CompanyDomain,
    Contact,
    CustomFieldDefinition,
    Role,
    User,
    Workspace,
    WorkspaceSettings,
)
from touchline.workspace import throttle, user_sessions
from touchline.workspace.custom_fields import (
    FIELD_KINDS,
    PLURALS,
    FieldKind,
    FieldType,
    StoredValue,
    check_value,
    field_type,
    normalise_key,
)
from touchline.workspace.permissions import DEFAULT_ROLES, Actor, Permission, parse_permissions

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 10
MAX_LOOKBACK_DAYS = 3650


# --- audit ---------------------------------------------------------------------------------------


def record_audit(
    session: Session,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object = "",
    details: dict[str, Any] | None = None,
) -> None:
    session.add(
        AuditEntry(
            workspace_id=actor.workspace_id,
            actor_user_id=actor.user_id,
            actor_label=actor.label,
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            details=details or {},
        )
    )


def end_public_account_usage(session: Session, actor: Actor, users: Iterable[User], because: str) -> None:
    """Switches public account usage off for users who no longer meet its conditions (the
    `email_on_my_behalf` permission, a connected mailbox, an active account), so the stored switch
    says what the From choices do; switching it back on is the user's own choice again."""
    for user in users:
        if user.public_account_usage:
            user.public_account_usage = False
            record_audit(
                session,
                actor,
                "user.public_account_usage",
                "user",
                user.id,
                {"public": False, "because": because},
            )


# --- workspaces and settings ---------------------------------------------------------------------


def _normalise_domains(values: Iterable[str], what: str) -> list[str]:
    result: list[str] = []
    for value in values:
        if not value.strip():
            continue
        try:
            domain = normalise_domain(value)
        except InvalidDomainError as error:
            raise InvalidInputError(f"{what}: {error}") from None
        if domain not in result:
            result.append(domain)
    return result


def _normalise_blocklist(values: Iterable[str]) -> list[str]:
    result: list[str] = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            entry = normalise_address(text) if "@" in text.lstrip("@") else normalise_domain(text)
        except (InvalidAddressError, InvalidDomainError) as error:
            raise InvalidInputError(f"blocklist: {error}") from None
        if entry not in result:
            result.append(entry)
    return result


def create_workspace(
    session: Session,
    box: SecretBox,
    name: str,
    *,
    internal_domains: Iterable[str] = (),
    inbound_domain: str,
    time_zone: str = DEFAULT_ZONE,
) -> Workspace:
    name = name.strip()
    if not name:
        raise InvalidInputError("a workspace needs a name")
    if zone_named(time_zone) is None:
        raise InvalidInputError(zone_problem(time_zone))
    if session.scalar(select(Workspace.id).where(Workspace.name == name)):
        raise ConflictError(f"a workspace named {name!r} already exists")
    workspace = Workspace(name=name)
    session.add(workspace)
    session.flush()
    workspace.settings = WorkspaceSettings(
        internal_domains=_normalise_domains(internal_domains, "internal domain"),
        blocklist=[],
        lookback_days=90,
        create_contacts_automatically=True,
        time_zone=time_zone.strip(),
        log_address=f"log-{secrets.token_hex(6)}@{normalise_domain(inbound_domain)}",
        inbound_secret_encrypted=box.encrypt(new_token("tlin")),
    )
    for role_name, permissions in DEFAULT_ROLES.items():
        session.add(Role(workspace_id=workspace.id, name=role_name, permissions=sorted(permissions)))
    session.flush()
    return workspace


def find_workspace(session: Session, reference: str) -> Workspace:
    """A workspace by id or by exact name (operator commands accept either)."""
    workspace: Workspace | None = None
    try:
        workspace = session.get(Workspace, uuid.UUID(reference))
    except ValueError:
        workspace = session.scalar(select(Workspace).where(Workspace.name == reference))
    if workspace is None:
        raise NotFoundError(f"no workspace {reference!r}; `touchline workspace create NAME` makes one")
    return workspace


def workspace_summary(session: Session, workspace: Workspace) -> dict[str, Any]:
    """What an operator needs to see of a workspace (`touchline workspace show W --json`)."""

    def count(model: type[User] | type[Company] | type[Contact]) -> int:
        return (
            session.scalar(select(func.count()).select_from(model).where(model.workspace_id == workspace.id))
            or 0
        )

    settings = workspace.settings
    roles = session.scalars(select(Role).where(Role.workspace_id == workspace.id).order_by(Role.name))
    return {
        "id": str(workspace.id),
        "name": workspace.name,
        "created_at": workspace.created_at.isoformat(),
        "log_address": settings.log_address,
        "internal_domains": list(settings.internal_domains),
        "blocklist": list(settings.blocklist),
        "lookback_days": settings.lookback_days,
        "time_zone": settings.time_zone,
        "create_contacts_automatically": settings.create_contacts_automatically,
        "default_synced_labels": {"inbox": settings.default_sync_inbox, "sent": settings.default_sync_sent},
        "unauthenticated_sender_domains": list(settings.unauthenticated_sender_domains),
        "roles": [{"name": role.name, "permissions": list(role.permissions)} for role in roles],
        "users": count(User),
        "companies": count(Company),
        "contacts": count(Contact),
    }


def get_workspace(session: Session, actor: Actor) -> Workspace:
    workspace = session.get(Workspace, actor.workspace_id)
    if workspace is None:
        raise NotFoundError("workspace not found")
    return workspace


def get_settings(session: Session, actor: Actor) -> WorkspaceSettings:
    settings = session.get(WorkspaceSettings, actor.workspace_id)
    if settings is None:
        raise NotFoundError("workspace settings not found")
    return settings


def time_zone_name(session: Session, workspace_id: uuid.UUID) -> str:
    """The workspace's time zone, an IANA name: people type and read times in it."""
    name = session.scalar(
        select(WorkspaceSettings.time_zone).where(WorkspaceSettings.workspace_id == workspace_id)
    )
    return name or DEFAULT_ZONE


def time_zone(session: Session, workspace_id: uuid.UUID) -> ZoneInfo:
    return zone_or_default(time_zone_name(session, workspace_id))


def visible_log_address(actor: Actor, settings: WorkspaceSettings) -> str | None:
    """The log address, for those whose logged mail is linked in full (their role may edit
    customers); a Viewer's would only ever be linked to companies, so Viewers are not shown it."""
    return settings.log_address if actor.can(Permission.EDIT_CUSTOMERS) else None


def unauthenticated_senders_warning(settings: WorkspaceSettings) -> str | None:
    """What admins must read while any From domain is let in without authentication."""
    domains = list(settings.unauthenticated_sender_domains)
    if not domains:
        return None
    return (
        f"Anyone can forge mail from {', '.join(domains)}: the log address logs mail claiming to come "
        "from these domains without checking that it does, so an outsider can put emails on your "
        "customers' timelines in your users' names."
    )


def internal_domain_warnings(session: Session, actor: Actor, domains: Iterable[str]) -> list[str]:
    """Internal domains that are most likely a mistake: a free-mail provider's (every customer who
    writes from it would count as staff) or a customer company's own."""
    warnings = []
    for domain in domains:
        if is_free_mail_domain(domain):
            warnings.append(
                f"{domain} is a free-mail provider's domain: everyone writing from it counts as your "
                "staff, so their mail is never kept. List your team's addresses there as users instead."
            )
            continue
        company = session.scalar(
            select(Company.name)
            .join(CompanyDomain)
            .where(CompanyDomain.workspace_id == actor.workspace_id, CompanyDomain.domain == domain)
        )
        if company is not None:
            warnings.append(
                f"{domain} is a domain of the customer {company}: its people count as your staff, so "
                "mail with them is never kept."
            )
    return warnings


@dataclass(frozen=True)
class SettingsChange:
    internal_domains: list[str] | None = None
    blocklist: list[str] | None = None
    lookback_days: int | None = None
    create_contacts_automatically: bool | None = None
    default_sync_inbox: bool | None = None
    default_sync_sent: bool | None = None
    unauthenticated_sender_domains: list[str] | None = None
    time_zone: str | None = None


def update_settings(session: Session, actor: Actor, change: SettingsChange) -> WorkspaceSettings:
    actor.require(Permission.ADMIN_ACCESS)
    settings = get_settings(session, actor)
    changed: dict[str, Any] = {}
    if change.internal_domains is not None:
        settings.internal_domains = _normalise_domains(change.internal_domains, "internal domain")
        changed["internal_domains"] = settings.internal_domains
    if change.blocklist is not None:
        settings.blocklist = _normalise_blocklist(change.blocklist)
        changed["blocklist"] = settings.blocklist
    if change.lookback_days is not None:
        if not 1 <= change.lookback_days <= MAX_LOOKBACK_DAYS:
            raise InvalidInputError(f"look-back days must be between 1 and {MAX_LOOKBACK_DAYS}")
        settings.lookback_days = change.lookback_days
        changed["lookback_days"] = change.lookback_days
    if change.time_zone is not None and change.time_zone.strip() != settings.time_zone:
        if zone_named(change.time_zone) is None:
            raise InvalidInputError(zone_problem(change.time_zone))
        settings.time_zone = change.time_zone.strip()
        changed["time_zone"] = settings.time_zone
    if change.unauthenticated_sender_domains is not None:
        domains = _normalise_domains(change.unauthenticated_sender_domains, "unauthenticated sender domain")
        if domains != list(settings.unauthenticated_sender_domains):
            settings.unauthenticated_sender_domains = domains
            changed["unauthenticated_sender_domains"] = domains
    for field in (
        "create_contacts_automatically",
        "default_sync_inbox",
        "default_sync_sent",
    ):
        value = getattr(change, field)
        if value is not None:
            setattr(settings, field, value)
            changed[field] = value
    if changed:
        record_audit(session, actor, "settings.update", "workspace", actor.workspace_id, changed)
    session.flush()
    return settings


def inbound_secret(session: Session, actor: Actor, box: SecretBox) -> str:
    actor.require(Permission.ADMIN_ACCESS)
    return box.decrypt(get_settings(session, actor).inbound_secret_encrypted)


def internal_domains_of(session: Session, workspace_id: uuid.UUID) -> list[str]:
    """Settings' internal domains plus every user's own domain (SPEC §1)."""
    settings = session.get(WorkspaceSettings, workspace_id)
    domains = list(settings.internal_domains) if settings else []
    for email in session.scalars(select(User.email).where(User.workspace_id == workspace_id)):
        domain = email.rpartition("@")[2]
        if domain not in domains and not is_free_mail_domain(domain):
            domains.append(domain)
    return domains


# --- roles ---------------------------------------------------------------------------------------


def list_roles(session: Session, actor: Actor) -> list[Role]:
    return list(
        session.scalars(select(Role).where(Role.workspace_id == actor.workspace_id).order_by(Role.name))
    )


def get_role(session: Session, actor: Actor, role_id: uuid.UUID) -> Role:
    role = session.scalar(select(Role).where(Role.id == role_id, Role.workspace_id == actor.workspace_id))
    if role is None:
        raise NotFoundError("role not found")
    return role


def find_role_by_name(session: Session, actor: Actor, name: str) -> Role:
    role = session.scalar(
        select(Role).where(
            Role.workspace_id == actor.workspace_id, func.lower(Role.name) == name.strip().lower()
        )
    )
    if role is None:
        names = ", ".join(role.name for role in list_roles(session, actor))
        raise NotFoundError(f"no role named {name!r}; this workspace has: {names}")
    return role


def create_role(session: Session, actor: Actor, name: str, permissions: list[str]) -> Role:
    actor.require(Permission.ADMIN_ACCESS)
    name = name.strip()
    if not name:
        raise InvalidInputError("a role needs a name")
    granted = parse_permissions(permissions)
    if session.scalar(select(Role.id).where(Role.workspace_id == actor.workspace_id, Role.name == name)):
        raise ConflictError(f"a role named {name!r} already exists")
    role = Role(workspace_id=actor.workspace_id, name=name, permissions=sorted(granted))
    session.add(role)
    session.flush()
    record_audit(
        session, actor, "role.create", "role", role.id, {"name": name, "permissions": role.permissions}
    )
    return role


def update_role(
    session: Session, actor: Actor, role_id: uuid.UUID, *, name: str | None, permissions: list[str] | None
) -> Role:
    actor.require(Permission.ADMIN_ACCESS)
    role = get_role(session, actor, role_id)
    details: dict[str, Any] = {}
    if name is not None and name.strip() != role.name:
        if session.scalar(
            select(Role.id).where(Role.workspace_id == actor.workspace_id, Role.name == name.strip())
        ):
            raise ConflictError(f"a role named {name!r} already exists")
        role.name = name.strip()
        details["name"] = role.name
    if permissions is not None:
        granted = sorted(parse_permissions(permissions))
        if Permission.ADMIN_ACCESS not in granted and Permission.ADMIN_ACCESS in role.permissions:
            _ensure_other_admin_remains(session, actor, excluding_role=role.id)
        role.permissions = list(granted)
        details["permissions"] = role.permissions
        if Permission.EMAIL_ON_MY_BEHALF not in granted:
            holders = session.scalars(select(User).where(User.role_id == role.id))
            end_public_account_usage(session, actor, holders, f"role {role.name} lost email_on_my_behalf")
    if details:
        record_audit(session, actor, "role.update", "role", role.id, details)
    session.flush()
    return role


def delete_role(session: Session, actor: Actor, role_id: uuid.UUID) -> None:
    actor.require(Permission.ADMIN_ACCESS)
    role = get_role(session, actor, role_id)
    in_use = session.scalar(select(func.count()).select_from(User).where(User.role_id == role.id)) or 0
    if in_use:
        raise ConflictError(f"role {role.name!r} is given to {in_use} user(s); give them another role first")
    session.delete(role)
    record_audit(session, actor, "role.delete", "role", role_id, {"name": role.name})
    session.flush()


def _ensure_other_admin_remains(
    session: Session,
    actor: Actor,
    *,
    excluding_user: uuid.UUID | None = None,
    excluding_role: uuid.UUID | None = None,
) -> None:
    """A workspace must keep at least one active admin, or nobody could ever change its settings again."""
    for user in session.scalars(
        select(User).where(User.workspace_id == actor.workspace_id, User.active.is_(True))
    ):
        if user.id == excluding_user or user.role_id == excluding_role:
            continue
        if Permission.ADMIN_ACCESS in user.role.permissions:
            return
    raise ConflictError("this would leave the workspace without an active admin")


# --- users and authentication --------------------------------------------------------------------


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInputError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def _address(raw: str, what: str = "email") -> str:
    try:
        return normalise_address(raw)
    except InvalidAddressError as error:
        raise InvalidInputError(f"{what}: {error}") from None


def add_user(
    session: Session,
    actor: Actor,
    email: str,
    *,
    name: str = "",
    role: str | uuid.UUID = "Member",
    password: str | None = None,
) -> User:
    actor.require(Permission.ADMIN_ACCESS)
    address = _address(email)
    if session.scalar(select(User.id).where(User.email == address)):
        raise ConflictError(f"{address} already has a touchline login")
    role_row = (
        get_role(session, actor, role)
        if isinstance(role, uuid.UUID)
        else find_role_by_name(session, actor, role)
    )
    if password is not None:
        check_password(password)
    user = User(
        workspace_id=actor.workspace_id,
        email=address,
        name=name.strip(),
        role_id=role_row.id,
        password_hash=hash_password(password) if password else None,
    )
    session.add(user)
    session.flush()
    record_audit(session, actor, "user.add", "user", user.id, {"email": address, "role": role_row.name})
    return user


def list_users(session: Session, actor: Actor) -> list[User]:
    return list(
        session.scalars(select(User).where(User.workspace_id == actor.workspace_id).order_by(User.email))
    )


def get_user(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    user = session.scalar(select(User).where(User.id == user_id, User.workspace_id == actor.workspace_id))
    if user is None:
        raise NotFoundError("user not found")
    return user


def find_user_by_email(session: Session, actor: Actor, email: str) -> User:
    address = _address(email)
    user = session.scalar(select(User).where(User.email == address, User.workspace_id == actor.workspace_id))
    if user is None:
        raise NotFoundError(f"no user {address} in this workspace")
    return user


def update_user(
    session: Session,
    actor: Actor,
    user_id: uuid.UUID,
    *,
    name: str | None = None,
    role_id: uuid.UUID | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> User:
    actor.require(Permission.ADMIN_ACCESS)
    user = get_user(session, actor, user_id)
    details: dict[str, Any] = {}
    if name is not None:
        user.name = name.strip()
        details["name"] = user.name
    if role_id is not None and role_id != user.role_id:
        new_role = get_role(session, actor, role_id)
        if (
            Permission.ADMIN_ACCESS in user.role.permissions
            and Permission.ADMIN_ACCESS not in new_role.permissions
        ):
            _ensure_other_admin_remains(session, actor, excluding_user=user.id)
        user.role_id = new_role.id
        user.role = new_role
        details["role"] = new_role.name
        if Permission.EMAIL_ON_MY_BEHALF.value not in new_role.permissions:
            end_public_account_usage(session, actor, [user], f"role {new_role.name} lacks email_on_my_behalf")
    if active is not None and active != user.active:
        if not active:
            if user.id == actor.user_id:
                raise ConflictError("you cannot deactivate yourself; another admin can")
            _ensure_other_admin_remains(session, actor, excluding_user=user.id)
            user_sessions.end_all(session, user.id, datetime.now(UTC))
            end_public_account_usage(session, actor, [user], "user deactivated")
        user.active = active
        details["active"] = active
    if password is not None:
        check_password(password)
        user.password_hash = hash_password(password)
        # A reset is often made because someone else may know the old password: log out everywhere.
        user_sessions.end_all(session, user.id, datetime.now(UTC))
        details["password_changed"] = True
    if details:
        record_audit(session, actor, "user.update", "user", user.id, details)
    session.flush()
    return user


def remove_user(session: Session, actor: Actor, user_id: uuid.UUID) -> None:
    actor.require(Permission.ADMIN_ACCESS)
    user = get_user(session, actor, user_id)
    _ensure_other_admin_remains(session, actor, excluding_user=user.id)
    record_audit(session, actor, "user.remove", "user", user.id, {"email": user.email})
    session.delete(user)
    session.flush()


def authenticate(session: Session, email: str, password: str) -> User | None:
    try:
        address = normalise_address(email)
    except InvalidAddressError:
        return None
    user = session.scalar(select(User).where(User.email == address))
    if user is None or not user.active or not user.password_hash:
        hash_password(password)  # same cost either way, so timing does not reveal which addresses exist
        return None
    return user if verify_password(user.password_hash, password) else None


def change_own_password(
    session: Session, actor: Actor, current_password: str, new_password: str, *, keep_login: str | None
) -> None:
    """The acting user's new password; every other login of theirs ends, the one at `keep_login` stays."""
    user = session.get(User, actor.user_id) if actor.user_id is not None else None
    if user is None or not user.active:
        raise NotFoundError("only a signed-in user changes their own password")
    if not user.password_hash or not verify_password(user.password_hash, current_password):
        raise InvalidInputError("the current password is not right")
    check_password(new_password)
    user.password_hash = hash_password(new_password)
    user_sessions.end_all(session, user.id, datetime.now(UTC), keep=keep_login)
    record_audit(session, actor, "user.password_change", "user", user.id)
    session.flush()


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt came to: a login id for the cookie, or how long to wait, or neither."""

    login: str | None = None
    wait: timedelta | None = None


def sign_in(
    session: Session, settings: Settings, email: str, password: str, *, address: str, now: datetime
) -> SignIn:
    """Checks the password unless the account or the client address must wait after failures.

    Unknown and known addresses are counted and answered alike, so the answers reveal no accounts.
    """
    keys = {
        "account": (f"login:account:{_login_name(email)}", throttle.login_account_policy(settings)),
        "address": (f"login:address:{address}", throttle.login_address_policy(settings)),
    }
    waits = [left for key, _ in keys.values() if (left := throttle.wait(session, key, now)) is not None]
    if waits:
        return SignIn(wait=max(waits))
    user = authenticate(session, email, password)
    if user is not None:
        throttle.clear(session, keys["account"][0])
        return SignIn(login=user_sessions.start(session, user, user_sessions.SessionLimits.of(settings), now))
    blocks: dict[str, tuple[AttemptRun, timedelta]] = {}
    for scope, (key, policy) in keys.items():
        run = throttle.count(session, key, policy, now)
        if (left := wait_left(run, now)) is not None:
            blocks[scope] = (run, left)
    if not blocks:
        return SignIn()
    _record_lockout(session, email, address, {scope: run for scope, (run, _) in blocks.items()})
    return SignIn(wait=max(left for _, left in blocks.values()))


def _login_name(email: str) -> str:
    try:
        return normalise_address(email)
    except InvalidAddressError:
        return email.strip().lower()[:320]


def _record_lockout(session: Session, email: str, address: str, blocks: dict[str, AttemptRun]) -> None:
    details = {
        scope: {
            "failures": run.attempts,
            "until": run.blocked_until.isoformat() if run.blocked_until else None,
        }
        for scope, run in blocks.items()
    }
    log.warning("sign-ins locked for %s from %s: %s", _login_name(email), address, details)
    user = session.scalar(select(User).where(User.email == _login_name(email)))
    if user is not None:
        sign_in_actor = Actor(user.workspace_id, None, f"sign-in from {address}", frozenset())
        record_audit(session, sign_in_actor, "user.sign_in_locked", "user", user.id, details)


def actor_for(user: User) -> Actor:
    return Actor(user.workspace_id, user.id, user.email, parse_permissions(list(user.role.permissions)))


def create_api_token(session: Session, actor: Actor, name: str) -> tuple[str, ApiToken]:
    """A new token for the acting user; the plain token is returned once and never stored."""
    if actor.user_id is None:
        raise InvalidInputError("API tokens belong to a user; pass --user to act as one")
    token = new_token("tl")
    row = ApiToken(
        workspace_id=actor.workspace_id,
        user_id=actor.user_id,
        name=name.strip() or "API token",
        token_digest=token_digest(token),
    )
    session.add(row)
    session.flush()
    record_audit(session, actor, "token.create", "api_token", row.id, {"name": row.name})
    return token, row


def list_api_tokens(session: Session, actor: Actor) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken)
            .where(ApiToken.workspace_id == actor.workspace_id, ApiToken.user_id == actor.user_id)
            .order_by(ApiToken.created_at)
        )
    )


def revoke_api_token(session: Session, actor: Actor, token_id: uuid.UUID) -> None:
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.id == token_id,
            ApiToken.workspace_id == actor.workspace_id,
            ApiToken.user_id == actor.user_id,
        )
    )
    if row is None:
        raise NotFoundError("API token not found")
    row.revoked_at = datetime.now(UTC)
    record_audit(session, actor, "token.revoke", "api_token", row.id, {"name": row.name})
    session.flush()


def actor_for_token(session: Session, token: str) -> Actor | None:
    row = session.scalar(select(ApiToken).where(ApiToken.token_digest == token_digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    now = datetime.now(UTC)
    # Written at most once a minute, as a login's last-seen is: a request that only reads then
    # writes nothing, so on SQLite it never waits behind a long writer.
    if row.last_used_at is None or now - row.last_used_at >= user_sessions.LAST_SEEN_PRECISION:
        row.last_used_at = now
    return actor_for(user)


def list_audit(session: Session, actor: Actor, limit: int = 100) -> list[AuditEntry]:
    actor.require(Permission.ADMIN_ACCESS)
    return list(
        session.scalars(
            select(AuditEntry)
            .where(AuditEntry.workspace_id == actor.workspace_id)
            .order_by(AuditEntry.created_at.desc())
            .limit(limit)
        )
    )


# --- companies -----------------------------------------------------------------------------------


def company_domain(session: Session, actor: Actor, raw: str) -> str:
    """A domain fit to identify a company in this workspace, or a clear refusal."""
    try:
        domain = normalise_domain(raw)
    except InvalidDomainError as error:
        raise InvalidInputError(str(error)) from None
    if is_free_mail_domain(domain):
        raise InvalidInputError(
            f"{domain} is a public email provider: people from many companies use it, so it cannot identify "
            "a company. Add those people as contacts instead."
        )
    for internal in internal_domains_of(session, actor.workspace_id):
        if domain_covers(internal, domain):
            raise InvalidInputError(f"{domain} is one of your own internal domains, not a customer's")
    return domain


def _attach_domain(session: Session, actor: Actor, company: Company, raw: str) -> str:
    domain = company_domain(session, actor, raw)
    owner = session.scalar(
        select(CompanyDomain).where(
            CompanyDomain.workspace_id == actor.workspace_id, CompanyDomain.domain == domain
        )
    )
    if owner is not None:
        if owner.company_id == company.id:
            return domain
        raise ConflictError(f"{domain} already belongs to the company {owner.company.name!r}")
    company.domains.append(CompanyDomain(workspace_id=actor.workspace_id, domain=domain))
    return domain


def _resolve_owner(session: Session, actor: Actor, owner: uuid.UUID | str | None) -> uuid.UUID | None:
    if owner is None or owner == "":
        return None
    if isinstance(owner, uuid.UUID):
        return get_user(session, actor, owner).id
    return find_user_by_email(session, actor, owner).id


MAX_COMPANY_NAME_CHARS = 200
"""The API's limit too (`schemas.CompanyCreate`): pages, imports and the CLI refuse what it refuses."""


def company_name(name: str) -> str:
    """A company's name as stored: trimmed, not empty, at most MAX_COMPANY_NAME_CHARS characters."""
    name = name.strip()
    if not name:
        raise InvalidInputError("a company needs a name")
    if len(name) > MAX_COMPANY_NAME_CHARS:
        raise InvalidInputError(
            f"a company's name has at most {MAX_COMPANY_NAME_CHARS} characters; this one has {len(name)}"
        )
    return name


def create_company(
    session: Session,
    actor: Actor,
    name: str,
    *,
    domains: Iterable[str] = (),
    account_owner: uuid.UUID | str | None = None,
    custom_fields: Mapping[str, object] | None = None,
) -> Company:
    actor.require(Permission.EDIT_CUSTOMERS)
    name = company_name(name)
    if session.scalar(
        select(Company.id).where(Company.workspace_id == actor.workspace_id, Company.name == name)
    ):
        raise ConflictError(f"a company named {name!r} already exists")
    company = Company(
        workspace_id=actor.workspace_id,
        name=name,
        account_owner_id=_resolve_owner(session, actor, account_owner),
        custom_fields=changed_custom_values(session, actor, "company", {}, custom_fields or {}),
    )
    session.add(company)
    session.flush()
    for domain in domains:
        if domain.strip():
            _attach_domain(session, actor, company, domain)
    session.flush()
    return company


def get_company(session: Session, actor: Actor, company_id: uuid.UUID) -> Company:
    actor.require(Permission.VIEW_CUSTOMERS)
    company = session.scalar(
        select(Company).where(Company.id == company_id, Company.workspace_id == actor.workspace_id)
    )
    if company is None:
        raise NotFoundError("company not found")
    return company


def find_company(session: Session, actor: Actor, name_or_domain: str) -> Company | None:
    """A company by exact name (case-insensitive) or by one of its domains."""
    text = name_or_domain.strip()
    company = session.scalar(
        select(Company).where(
            Company.workspace_id == actor.workspace_id, func.lower(Company.name) == text.lower()
        )
    )
    if company is not None:
        return company
    try:
        domain = normalise_domain(text)
    except InvalidDomainError:
        return None
    return session.scalar(
        select(Company)
        .join(CompanyDomain)
        .where(CompanyDomain.workspace_id == actor.workspace_id, CompanyDomain.domain == domain)
    )


def update_company(
    session: Session,
    actor: Actor,
    company_id: uuid.UUID,
    *,
    name: str | None = None,
    account_owner: uuid.UUID | str | None = None,
    clear_account_owner: bool = False,
    custom_fields: Mapping[str, object] | None = None,
) -> Company:
    """`custom_fields` changes only the keys it names; a None value clears that field."""
    actor.require(Permission.EDIT_CUSTOMERS)
    company = get_company(session, actor, company_id)
    if name is not None and name.strip() != company.name:
        name = company_name(name)
        if session.scalar(
            select(Company.id).where(Company.workspace_id == actor.workspace_id, Company.name == name)
        ):
            raise ConflictError(f"a company named {name!r} already exists")
        company.name = name
    if clear_account_owner:
        company.account_owner_id = None
    elif account_owner is not None:
        company.account_owner_id = _resolve_owner(session, actor, account_owner)
    if custom_fields:
        company.custom_fields = changed_custom_values(
            session, actor, "company", company.custom_fields, custom_fields
        )
    session.flush()
    session.refresh(company)
    return company


def delete_company(session: Session, actor: Actor, company_id: uuid.UUID) -> None:
    actor.require(Permission.EDIT_CUSTOMERS)
    company = get_company(session, actor, company_id)
    record_audit(session, actor, "company.delete", "company", company.id, {"name": company.name})
    session.delete(company)
    session.flush()


def add_company_domain(session: Session, actor: Actor, company_id: uuid.UUID, domain: str) -> Company:
    actor.require(Permission.EDIT_CUSTOMERS)
    company = get_company(session, actor, company_id)
    _attach_domain(session, actor, company, domain)
    try:
        session.flush()
    except IntegrityError:
        raise ConflictError(f"{domain} was just given to another company") from None
    return company


def remove_company_domain(session: Session, actor: Actor, company_id: uuid.UUID, domain: str) -> Company:
    actor.require(Permission.EDIT_CUSTOMERS)
    company = get_company(session, actor, company_id)
    try:
        wanted = normalise_domain(domain)
    except InvalidDomainError as error:
        raise InvalidInputError(str(error)) from None
    for row in company.domains:
        if row.domain == wanted:
            company.domains.remove(row)
            session.flush()
            return company
    raise NotFoundError(f"{wanted} is not a domain of {company.name}")


# --- contacts ------------------------------------------------------------------------------------


def _company_in_workspace(session: Session, actor: Actor, company_id: uuid.UUID | None) -> uuid.UUID | None:
    if company_id is None:
        return None
    return get_company(session, actor, company_id).id


def create_contact(
    session: Session,
    actor: Actor,
    email: str,
    *,
    name: str = "",
    company_id: uuid.UUID | None = None,
    custom_fields: Mapping[str, object] | None = None,
) -> Contact:
    actor.require(Permission.EDIT_CUSTOMERS)
    address = _address(email)
    if session.scalar(
        select(Contact.id).where(Contact.workspace_id == actor.workspace_id, Contact.email == address)
    ):
        raise ConflictError(f"a contact with the address {address} already exists")
    contact = Contact(
        workspace_id=actor.workspace_id,
        email=address,
        name=name.strip(),
        company_id=_company_in_workspace(session, actor, company_id),
        custom_fields=changed_custom_values(session, actor, "contact", {}, custom_fields or {}),
    )
    session.add(contact)
    session.flush()
    return contact


def get_contact(session: Session, actor: Actor, contact_id: uuid.UUID) -> Contact:
    actor.require(Permission.VIEW_CUSTOMERS)
    contact = session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.workspace_id == actor.workspace_id)
    )
    if contact is None:
        raise NotFoundError("contact not found")
    return contact


def clear_undeliverable(session: Session, actor: Actor, contact_id: uuid.UUID) -> Contact:
    """Sends reach the contact's address again after a hard bounce marked it undeliverable (an admin
    who edits contacts decides the address works again)."""
    actor.require(Permission.EDIT_CUSTOMERS)
    actor.require(Permission.ADMIN_ACCESS)
    contact = get_contact(session, actor, contact_id)
    if contact.undeliverable_at is not None:
        record_audit(
            session,
            actor,
            "contact.deliverable",
            "contact",
            contact.id,
            {"email": contact.email, "was": contact.undeliverable_reason},
        )
    contact.undeliverable_at, contact.undeliverable_reason = None, None
    session.flush()
    return contact


def find_contact_by_email(session: Session, actor: Actor, email: str) -> Contact | None:
    return session.scalar(
        select(Contact).where(Contact.workspace_id == actor.workspace_id, Contact.email == _address(email))
    )


def update_contact(
    session: Session,
    actor: Actor,
    contact_id: uuid.UUID,
    *,
    email: str | None = None,
    name: str | None = None,
    company_id: uuid.UUID | None = None,
    clear_company: bool = False,
    custom_fields: Mapping[str, object] | None = None,
) -> Contact:
    """`custom_fields` changes only the keys it names; a None value clears that field."""
    actor.require(Permission.EDIT_CUSTOMERS)
    contact = get_contact(session, actor, contact_id)
    if email is not None:
        address = _address(email)
        if address != contact.email and session.scalar(
            select(Contact.id).where(Contact.workspace_id == actor.workspace_id, Contact.email == address)
        ):
            raise ConflictError(f"a contact with the address {address} already exists")
        contact.email = address
    if name is not None:
        contact.name = name.strip()
    if clear_company:
        contact.company_id = None
    elif company_id is not None:
        contact.company_id = _company_in_workspace(session, actor, company_id)
    if custom_fields:
        contact.custom_fields = changed_custom_values(
            session, actor, "contact", contact.custom_fields, custom_fields
        )
    session.flush()
    session.refresh(contact)
    return contact


def delete_contact(session: Session, actor: Actor, contact_id: uuid.UUID) -> None:
    actor.require(Permission.EDIT_CUSTOMERS)
    contact = get_contact(session, actor, contact_id)
    session.delete(contact)
    session.flush()


# --- custom fields -------------------------------------------------------------------------------


def _kind(raw: str) -> FieldKind:
    for kind in FIELD_KINDS:
        if raw == kind:
            return kind
    raise InvalidInputError(f"{raw!r} is not a kind of custom field; use {' or '.join(FIELD_KINDS)}")


def list_custom_fields(
    session: Session, actor: Actor, kind: str | None = None
) -> list[CustomFieldDefinition]:
    actor.require(Permission.VIEW_CUSTOMERS)
    query = select(CustomFieldDefinition).where(CustomFieldDefinition.workspace_id == actor.workspace_id)
    if kind is not None:
        query = query.where(CustomFieldDefinition.kind == _kind(kind))
    return list(session.scalars(query.order_by(CustomFieldDefinition.kind, CustomFieldDefinition.label)))


def custom_field_types(session: Session, workspace_id: uuid.UUID, kind: FieldKind) -> dict[str, FieldType]:
    """Key -> type of one kind's fields; for readers that act for the workspace, not for a user."""
    rows = session.execute(
        select(CustomFieldDefinition.key, CustomFieldDefinition.type).where(
            CustomFieldDefinition.workspace_id == workspace_id, CustomFieldDefinition.kind == kind
        )
    )
    return {key: field_type(kind_name) for key, kind_name in rows}


def create_custom_field(
    session: Session, actor: Actor, kind: str, label: str, type_name: str, key: str | None = None
) -> CustomFieldDefinition:
    """A new field of companies or contacts; its key is made from `key`, or from the label when no
    key is given (see custom_fields.normalise_key)."""
    actor.require(Permission.EDIT_CUSTOMERS)
    field_kind = _kind(kind)
    label = label.strip()
    if not label:
        raise InvalidInputError("a custom field needs a label")
    wanted = normalise_key(key if key else label)
    if session.scalar(
        select(CustomFieldDefinition.id).where(
            CustomFieldDefinition.workspace_id == actor.workspace_id,
            CustomFieldDefinition.kind == field_kind,
            CustomFieldDefinition.key == wanted,
        )
    ):
        raise ConflictError(f"{PLURALS[field_kind]} already have a custom field with the key {wanted!r}")
    definition = CustomFieldDefinition(
        workspace_id=actor.workspace_id, kind=field_kind, key=wanted, label=label, type=field_type(type_name)
    )
    session.add(definition)
    session.flush()
    record_audit(
        session,
        actor,
        "custom_field.create",
        "custom_field",
        definition.id,
        {"kind": field_kind, "key": wanted, "type": definition.type},
    )
    return definition


def get_custom_field(session: Session, actor: Actor, field_id: uuid.UUID) -> CustomFieldDefinition:
    actor.require(Permission.VIEW_CUSTOMERS)
    definition = session.scalar(
        select(CustomFieldDefinition).where(
            CustomFieldDefinition.id == field_id, CustomFieldDefinition.workspace_id == actor.workspace_id
        )
    )
    if definition is None:
        raise NotFoundError("custom field not found")
    return definition


def rename_custom_field(
    session: Session, actor: Actor, field_id: uuid.UUID, label: str
) -> CustomFieldDefinition:
    """A new label; the key stays, so templates and filters that name it keep working."""
    actor.require(Permission.EDIT_CUSTOMERS)
    definition = get_custom_field(session, actor, field_id)
    if not label.strip():
        raise InvalidInputError("a custom field needs a label")
    definition.label = label.strip()
    session.flush()
    return definition


def delete_custom_field(session: Session, actor: Actor, field_id: uuid.UUID) -> None:
    """Removes the field and its value from every company or contact of the workspace."""
    actor.require(Permission.EDIT_CUSTOMERS)
    definition = get_custom_field(session, actor, field_id)
    records: Iterable[Company | Contact] = (
        session.scalars(select(Company).where(Company.workspace_id == actor.workspace_id))
        if definition.kind == "company"
        else session.scalars(select(Contact).where(Contact.workspace_id == actor.workspace_id))
    )
    for record in records:
        if definition.key in record.custom_fields:
            record.custom_fields = {
                key: value for key, value in record.custom_fields.items() if key != definition.key
            }
    record_audit(
        session,
        actor,
        "custom_field.delete",
        "custom_field",
        definition.id,
        {"kind": definition.kind, "key": definition.key},
    )
    session.delete(definition)
    session.flush()


def changed_custom_values(
    session: Session,
    actor: Actor,
    kind: FieldKind,
    current: Mapping[str, Any],
    changes: Mapping[str, object],
) -> dict[str, StoredValue]:
    """`current` with `changes` applied, each checked against its field's definition; a None value
    clears the field. An unknown key or a value of the wrong type is refused, naming the field."""
    types = custom_field_types(session, actor.workspace_id, kind)
    values: dict[str, Any] = dict(current)
    for key, value in changes.items():
        if key not in types:
            known = ", ".join(sorted(types)) or "none yet"
            raise InvalidInputError(
                f"{key!r} is not a custom field of {PLURALS[kind]} (they have: {known}); define it first"
            )
        if value is None or value == "":
            values.pop(key, None)
        else:
            values[key] = check_value(key, types[key], value)
    return values
