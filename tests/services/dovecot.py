"""A private Dovecot IMAP server for tests, started once per test session.

Nothing of the machine's own Dovecot is touched: configuration, sockets, state, logs and mail live in
a fresh temporary directory, and the server listens on free loopback ports. It offers IMAP with
STARTTLS and IMAP over TLS (a certificate signed by a throwaway CA; ``server.tls_context()`` trusts
it), SPECIAL-USE folders (named in German, so that only the flags identify them), CONDSTORE/QRESYNC
and IDLE. A second server, ``dovecot_without_special_use``, is an older, plainer one: it advertises
neither SPECIAL-USE nor IDLE, flags no folder and offers no TLS at all.

Each test gets its own mail user (``imap_user``), so tests never see each other's mail. When the
``dovecot`` binary is missing the tests are skipped, except under ``CI=true``, where that is a
failure: CI must run them.

Use from a conftest: ``from tests.services.dovecot import dovecot, imap_user, ...``.
"""

from __future__ import annotations

import datetime as dt
import grp
import ipaddress
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from imapclient import IMAPClient

from tests.services import free_port, unavailable
from touchline.kit.net import AddressPolicy

HOST = "127.0.0.1"
# The servers listen on loopback, where mail connections go only when allowed.
LOOPBACK_ALLOWED = AddressPolicy(allow_private=True)
_STARTUP_TIMEOUT_SECONDS = 10.0
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")
# The server with SPECIAL-USE names its folders in German, so only the flags can identify them; the
# one without uses the English names clients fall back on.
SPECIAL_FOLDERS = {
    "Gesendet": "\\Sent",
    "Entwürfe": "\\Drafts",
    "Papierkorb": "\\Trash",
    "Unerwünscht": "\\Junk",
}
PLAIN_FOLDERS = {"Sent": "\\Sent", "Drafts": "\\Drafts", "Trash": "\\Trash", "Junk": "\\Junk"}
# What Dovecot 2.3 advertises after login, minus SPECIAL-USE and IDLE, for the "older server".
_CAPABILITIES_WITHOUT_SPECIAL_USE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE LITERAL+"
)


def dovecot_binary() -> Path | None:
    found = shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/usr/local/sbin")
    return Path(found) if found else None


def doveadm_binary() -> Path | None:
    found = shutil.which("doveadm") or shutil.which("doveadm", path="/usr/bin:/usr/sbin:/usr/local/bin")
    return Path(found) if found else None


@dataclass(frozen=True)
class ImapUser:
    username: str
    password: str = field(repr=False)


@dataclass
class DovecotServer:
    root: Path
    imap_port: int
    imaps_port: int | None
    special_use: bool
    ca_certificate: Path
    config: Path
    users_dir: Path
    mail_uid: int
    mail_gid: int
    host: str = HOST
    _user_numbers: Iterator[int] = field(default_factory=itertools.count)

    def add_user(self, password: str | None = None) -> ImapUser:
        """A new, empty mailbox. Each user has a passwd-file of their own, which Dovecot opens by
        name at login, so a user added a moment ago is never hidden by a cached older file."""
        user = ImapUser(f"user{next(self._user_numbers)}", password or secrets.token_urlsafe(12))
        home = self.root / "home" / user.username
        home.mkdir(parents=True)
        os.chown(home, self.mail_uid, self.mail_gid)
        entry = self.users_dir / user.username
        entry.write_text(
            f"{user.username}:{{PLAIN}}{user.password}:{self.mail_uid}:{self.mail_gid}::{home}\n"
        )
        entry.chmod(0o644)
        return user

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_certificate))

    def client(self, user: ImapUser) -> IMAPClient:
        client = IMAPClient(self.host, port=self.imap_port, ssl=False, timeout=10)
        client.login(user.username, user.password)
        return client

    def create_folder(self, user: ImapUser, folder: str) -> None:
        with self.client(user) as client:
            client.create_folder(folder)

    def append(
        self,
        user: ImapUser,
        folder: str,
        message: bytes,
        *,
        received_at: dt.datetime,
        flags: Sequence[bytes] = (),
    ) -> int:
        """Store a message as if it had arrived at ``received_at``; returns its UID."""
        with self.client(user) as client:
            response = client.append(folder, message, flags=tuple(flags), msg_time=received_at)
        match = _APPENDUID.search(response)
        assert match, f"Dovecot did not report the appended UID: {response!r}"
        return int(match.group(2))

    def flags(self, user: ImapUser, folder: str, uid: int) -> tuple[bytes, ...]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return tuple(client.get_flags([uid])[uid])

    def uidvalidity(self, user: ImapUser, folder: str) -> int:
        with self.client(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def renumber_folder(self, user: ImapUser, folder: str) -> int:
        """Give the folder a new UIDVALIDITY, keeping its messages, as a server restored from backup
        would; returns the new value."""
        doveadm = doveadm_binary()
        assert doveadm is not None, "doveadm comes with dovecot-core"
        new_uidvalidity = self.uidvalidity(user, folder) + 1
        subprocess.run(
            [
                str(doveadm),
                "-c",
                str(self.config),
                "mailbox",
                "update",
                "-u",
                user.username,
                "--uid-validity",
                str(new_uidvalidity),
                folder,
            ],
            check=True,
            capture_output=True,
            timeout=10,
        )
        return new_uidvalidity

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "dovecot.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def stop(self) -> None:
        pid_file = self.root / "run" / "master.pid"
        if pid_file.exists():
            _stop_process_group(int(pid_file.read_text().strip()))
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot(
    *, special_use: bool = True, tls: bool = True, oauth2_introspection_url: str | None = None
) -> DovecotServer:
    """With ``oauth2_introspection_url``, XOAUTH2 logins are accepted too: Dovecot sends the
    bearer token to that URL (``Authorization: Bearer``) and expects ``{"active": true, "username":
    ...}`` back."""
    binary = dovecot_binary()
    if binary is None:
        unavailable("Dovecot", "install the dovecot-imapd package")
        raise AssertionError("unavailable() skips or fails")
    # Dovecot's login and mail processes run as other users and must reach this directory, so it
    # cannot live under pytest's private (0700) temporary directory.
    root = Path(tempfile.mkdtemp(prefix="touchline-dovecot-"))
    root.chmod(0o755)
    internal_user, login_user, mail_uid, mail_gid = _process_users()
    certificate, key, ca_certificate = _write_certificates(root)
    users_dir = root / "users"
    users_dir.mkdir()
    users_dir.chmod(0o755)
    (root / "home").mkdir()
    imap_port = free_port()
    imaps_port = free_port() if tls else None
    oauth2_config = None
    if oauth2_introspection_url is not None:
        oauth2_config = root / "oauth2.conf"
        oauth2_config.write_text(
            "introspection_mode = auth\n"
            f"introspection_url = {oauth2_introspection_url}\n"
            "username_attribute = username\n"
            "active_attribute = active\n"
            "active_value = true\n"
        )
        oauth2_config.chmod(0o644)
    config = root / "dovecot.conf"
    config.write_text(
        _config_text(
            root=root,
            imap_port=imap_port,
            imaps_port=imaps_port,
            certificate=certificate,
            key=key,
            users_dir=users_dir,
            internal_user=internal_user,
            login_user=login_user,
            special_use=special_use,
            oauth2_config=oauth2_config,
        )
    )
    server = DovecotServer(
        root=root,
        imap_port=imap_port,
        imaps_port=imaps_port,
        special_use=special_use,
        ca_certificate=ca_certificate,
        config=config,
        users_dir=users_dir,
        mail_uid=mail_uid,
        mail_gid=mail_gid,
    )
    # Dovecot daemonises and its children keep inherited pipes open, so its startup errors go to
    # a file rather than a pipe that would never reach end of file.
    startup_log = root / "startup.log"
    with startup_log.open("w") as errors:
        started = subprocess.run(
            [str(binary), "-c", str(config)],
            check=False,
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
            timeout=_STARTUP_TIMEOUT_SECONDS,
        )
    if started.returncode != 0:
        message = startup_log.read_text(errors="replace").strip()
        server.stop()
        pytest.fail(f"dovecot did not start: {message}")
    if not all(_wait_for_port(port) for port in (imap_port, imaps_port) if port is not None):
        log = server.log_tail()
        server.stop()
        pytest.fail(f"dovecot did not open its ports; log:\n{log}")
    return server


@pytest.fixture(scope="session")
def dovecot_oauth2_introspection_url() -> str | None:
    """Override in a conftest to let ``dovecot`` accept XOAUTH2 tokens checked at that URL."""
    return None


@pytest.fixture(scope="session")
def dovecot(dovecot_oauth2_introspection_url: str | None) -> Iterator[DovecotServer]:
    server = start_dovecot(special_use=True, oauth2_introspection_url=dovecot_oauth2_introspection_url)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dovecot_without_special_use() -> Iterator[DovecotServer]:
    server = start_dovecot(special_use=False, tls=False)
    yield server
    server.stop()


@pytest.fixture
def imap_user(dovecot: DovecotServer) -> ImapUser:
    return dovecot.add_user()


def _stop_process_group(master_pid: int) -> None:
    """Ask Dovecot to stop, then end whatever of it is left after a moment.

    A clean stop waits over a second for Dovecot's log process; the suite needs none of its
    remaining output, so after a short grace the whole process group is killed.
    """
    try:
        group = os.getpgid(master_pid)
        os.kill(master_pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline and _running(master_pid):
        time.sleep(0.02)
    # Dovecot's master starts its own session; never signal the group running the tests.
    if group != os.getpgrp():
        with suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)


def _running(pid: int) -> bool:
    """True while the process exists and has not exited; a zombie waiting to be reaped has."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def _process_users() -> tuple[str, str, int, int]:
    """Users for Dovecot's internal and login processes, and the owner of the test mail."""
    if os.geteuid() != 0:
        # Unprivileged, Dovecot can only run everything as the user who started it.
        name = pwd.getpwuid(os.getuid()).pw_name
        return name, name, os.getuid(), os.getgid()
    internal = _existing_user("dovecot")
    login = _existing_user("dovenull") or internal
    nobody = pwd.getpwnam("nobody")
    if internal is None or login is None:
        unavailable("Dovecot's system users", "reinstall dovecot-core, which creates them")
        raise AssertionError("unavailable() skips or fails")
    return internal, login, nobody.pw_uid, _nogroup_gid(nobody.pw_gid)


def _existing_user(name: str) -> str | None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return None
    return name


def _nogroup_gid(default: int) -> int:
    try:
        return grp.getgrnam("nogroup").gr_gid
    except KeyError:
        return default


def _wait_for_port(port: int) -> bool:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def _write_certificates(root: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for localhost and 127.0.0.1 signed by it."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "touchline test CA")])
    ca_certificate = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = root / "ca.pem"
    ca_path.write_bytes(ca_certificate.public_bytes(serialization.Encoding.PEM))
    certificate_path = root / "server.pem"
    certificate_path.write_bytes(server_certificate.public_bytes(serialization.Encoding.PEM))
    key_path = root / "server.key"
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    # Dovecot's master process reads the key before dropping privileges.
    key_path.chmod(0o600)
    return certificate_path, key_path, ca_path


def _config_text(
    *,
    root: Path,
    imap_port: int,
    imaps_port: int | None,
    certificate: Path,
    key: Path,
    users_dir: Path,
    internal_user: str,
    login_user: str,
    special_use: bool,
    oauth2_config: Path | None,
) -> str:
    mailboxes = "\n".join(
        f"  mailbox {name} {{\n    auto = subscribe\n"
        + (f"    special_use = {flag}\n" if special_use else "")
        + "  }"
        for name, flag in (SPECIAL_FOLDERS if special_use else PLAIN_FOLDERS).items()
    )
    capability = "" if special_use else f"imap_capability = {_CAPABILITIES_WITHOUT_SPECIAL_USE}\n"
    tls = f"ssl = yes\nssl_cert = <{certificate}\nssl_key = <{key}" if imaps_port is not None else "ssl = no"
    mechanisms = "plain login xoauth2" if oauth2_config is not None else "plain login"
    oauth2_passdb = (
        f"passdb {{\n  driver = oauth2\n  mechanisms = xoauth2\n  args = {oauth2_config}\n}}\n"
        if oauth2_config is not None
        else ""
    )
    # Port 0 switches a listener off.
    imaps_listener_port = imaps_port if imaps_port is not None else 0
    return f"""# Written by tests/services/dovecot.py for one test session.
protocols = imap
listen = {HOST}
base_dir = {root}/run
state_dir = {root}/state
instance_name = touchline-test-{imap_port}
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
default_internal_user = {internal_user}
default_login_user = {login_user}
first_valid_uid = 1
first_valid_gid = 1
{tls}
# Plain-text logins are for the suite's own loopback helpers.
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
mail_location = maildir:~/Maildir
mail_fsync = never
# Failed logins are part of the tests; Dovecot's usual delay for them would only slow the suite.
auth_failure_delay = 0
{capability}{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {users_dir}/%u
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {users_dir}/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = {HOST}
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {imaps_listener_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
  # Without this socket Dovecot applies no authentication penalty, which would otherwise delay every
  # login from 127.0.0.1 for seconds after a test's deliberately failed one.
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
"""
