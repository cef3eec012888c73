"""Messages on disk, for `touchline import mail` and `touchline triage` alike: mbox files, maildirs
(new/ and cur/, never tmp/), folders of message files read recursively, and single message files.

Every item is yielded in a stable order (names sorted), either with its bytes or with the reason it
could not be read: a file that cannot be opened or read, a folder that cannot be listed, a symbolic
link that leads nowhere or back to a folder already read, something that is not a regular file. The
walk never stops at such an item, and never follows a link loop.

An mbox is a file whose first line that is not blank starts with "From " (or one named `*.mbox`);
a message starts at a "From " line at the start of the file or after a blank line (mboxo and
mboxrd; ">From " lines are left as written). `headers_only` reads only each message's header
block and skips bodies unread, as triage and sync's first pass do.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from touchline.inbound.parse import ParsedEmail

_CHUNK = 64 * 1024
# Far beyond any real header block; a file whose first megabytes hold no blank line is read no further.
MAX_HEADER_BYTES = 4 * 1024 * 1024
_MAILDIR_PARTS = ("new", "cur")
_BLANK_LINES = frozenset({b"\n", b"\r\n"})


@dataclass(frozen=True, slots=True)
class MailItem:
    """One message found on disk (`raw`: the message, or its header block), or why it is unreadable.

    `folder` names the mail folder it came from: the maildir's or mbox's name, or the folder that
    holds the file.
    """

    label: str
    raw: bytes | None
    error: str | None = None
    folder: str = ""


def mail_items(path: Path, *, headers_only: bool = False) -> Iterator[MailItem]:
    """Every message under `path`, and every item under it that could not be read."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        yield MailItem(str(path), None, _reason(error, "no such file or directory"))
        return
    if stat.S_ISDIR(mode):
        yield from _folder(path, headers_only, set())
    elif stat.S_ISREG(mode):
        yield from _file(path, headers_only, path.parent.name)
    else:
        yield MailItem(str(path), None, "not a regular file or folder")


def unreadable_reason(header: bytes, parsed: ParsedEmail) -> str | None:
    """Why a message whose header block is `header` is no message at all, or None when it is one."""
    if not header.strip():
        return "empty message"
    unreadable = [defect for defect in parsed.defects if defect.startswith("message: unreadable")]
    if unreadable:
        return unreadable[0]
    if not (parsed.from_ or parsed.to or parsed.cc or parsed.message_id or parsed.date or parsed.subject):
        return "no readable header fields: " + ("; ".join(parsed.defects[:3]) or "not an email message")
    return None


def _reason(error: OSError, missing: str = "") -> str:
    if isinstance(error, FileNotFoundError) and missing:
        return missing
    return error.strerror or str(error)


def _folder(folder: Path, headers_only: bool, seen: set[tuple[int, int]]) -> Iterator[MailItem]:
    try:
        identity = folder.stat()
        key = (identity.st_dev, identity.st_ino)
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        yield MailItem(str(folder), None, f"cannot list folder: {_reason(error)}")
        return
    if key in seen:
        yield MailItem(str(folder), None, "a symbolic link back to a folder already read; not read again")
        return
    seen = seen | {key}
    kinds = {}
    for entry in entries:
        try:
            kinds[entry.name] = "dir" if entry.is_dir() else "file" if entry.is_file() else "other"
        except OSError as error:  # a link loop, or a link the walk may not follow
            kinds[entry.name] = _reason(error)
    is_maildir = all(kinds.get(part) == "dir" for part in _MAILDIR_PARTS)
    for entry in entries:
        kind = kinds[entry.name]
        if kind == "dir":
            if not (is_maildir and entry.name == "tmp"):
                yield from _folder(Path(entry.path), headers_only, seen)
        elif entry.name.startswith("."):
            continue  # .DS_Store, maildir's .lock files and the like
        elif kind == "file":
            yield from _file(Path(entry.path), headers_only, folder.name if is_maildir else _named(folder))
        elif kind == "other":
            reason = "a symbolic link to nothing" if entry.is_symlink() else "not a regular file"
            yield MailItem(entry.path, None, reason)
        else:
            yield MailItem(entry.path, None, f"cannot read: {kind}")


def _named(folder: Path) -> str:
    """A maildir's part (cur, new) names no folder: its maildir does."""
    return folder.parent.name if folder.name in _MAILDIR_PARTS else folder.name


def _file(path: Path, headers_only: bool, folder: str) -> Iterator[MailItem]:
    try:
        handle = path.open("rb")
    except OSError as error:
        yield MailItem(str(path), None, f"cannot open: {_reason(error)}", folder)
        return
    with handle:
        try:
            if _is_mbox(path, handle):
                yield from _mbox(path, handle, headers_only)
            elif headers_only:
                yield MailItem(str(path), _read_header(handle), folder=folder)
            else:
                yield MailItem(str(path), handle.read(), folder=folder)
        except OSError as error:
            yield MailItem(str(path), None, f"cannot read: {_reason(error)}", folder)


def _is_mbox(path: Path, handle: BinaryIO) -> bool:
    if path.suffix.lower() == ".mbox":
        return True
    start = handle.read(_CHUNK)
    handle.seek(0)
    return start.lstrip(b"\r\n").startswith(b"From ")


def _read_header(handle: BinaryIO) -> bytes:
    """Read up to the blank line that ends the header block, and no further."""
    data = bytearray()
    searched = 0
    while len(data) < MAX_HEADER_BYTES:
        chunk = handle.read(_CHUNK)
        if not chunk:
            break
        data += chunk
        # Look again from a little before the old end: the blank line may straddle two chunks.
        found = _header_end(data, max(0, searched - 3))
        if found >= 0:
            return bytes(data[:found])
        searched = len(data)
    return bytes(data)


def _header_end(data: bytearray, start: int) -> int:
    ends = [
        position + len(separator)
        for separator in (b"\n\n", b"\n\r\n")
        if (position := data.find(separator, start)) >= 0
    ]
    return min(ends) if ends else -1


def _mbox(path: Path, handle: BinaryIO, headers_only: bool) -> Iterator[MailItem]:
    """Each message of an mbox, numbered from 1; with `headers_only`, bodies are skipped unread."""
    folder = path.stem
    number = 0
    message: bytearray | None = None
    in_header = False
    previous_blank = True
    for line in handle:
        if line.startswith(b"From ") and previous_blank:
            if message is not None:
                yield MailItem(f"{path}#{number}", _without_separator(message, headers_only), folder=folder)
            number += 1
            message = bytearray()
            in_header = True
            previous_blank = False
            continue
        previous_blank = line in _BLANK_LINES
        if message is None:
            continue  # blank lines (or text) before the first "From " line belong to no message
        if in_header or not headers_only:
            message += line
        if in_header and (previous_blank or len(message) > MAX_HEADER_BYTES):
            in_header = False
    if message is not None:
        yield MailItem(f"{path}#{number}", _without_separator(message, headers_only), folder=folder)
    else:
        yield MailItem(str(path), None, "not an mbox file: no message starts with a 'From ' line", folder)


def _without_separator(message: bytearray, headers_only: bool) -> bytes:
    """The message without the blank line that separates it from the next "From " line."""
    if not headers_only:
        if message.endswith(b"\r\n\r\n"):
            del message[-2:]
        elif message.endswith(b"\n\n"):
            del message[-1:]
    return bytes(message)
