"""`touchline triage`: decide keep or ignore for messages on disk against a directory file, offline.

Reads mbox files, maildirs, folders of message files (recursively) and single message files; reads
only each message's header block, as sync does; prints one JSON line per message. A message that
cannot be read is reported as "quarantine" with its error and the run goes on.

Exit codes: 0 when every path exists (quarantined messages included), 1 when a path does not
exist (it is reported as a quarantine line too), 2 when the directory file is unusable.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

from touchline.inbound.directory import Directory, DirectoryError
from touchline.inbound.match import Decision, match
from touchline.inbound.parse import ParsedEmail, parse_headers

_CHUNK = 64 * 1024
# Far beyond any real header block; a file whose first megabytes hold no blank line is read no further.
_MAX_HEADER_BYTES = 4 * 1024 * 1024
_MAILDIR_PARTS = ("new", "cur")


@dataclass(frozen=True, slots=True)
class _Source:
    """One message's header bytes, or why they could not be read."""

    path: str
    header: bytes | None
    error: str | None = None


def run_triage(directory_file: Path, paths: Sequence[Path], out: TextIO) -> int:
    """Print one JSON decision line per message under `paths`; return the process exit code."""
    try:
        directory = Directory.load(directory_file)
    except (OSError, DirectoryError) as error:
        print(f"touchline triage: cannot use directory {directory_file}: {error}", file=sys.stderr)
        return 2
    # The directory lives as long as the run: keep the collector from walking its million entries
    # again and again while messages come and go.
    gc.freeze()
    try:
        exit_code = 0
        for path in paths:
            if not path.exists():
                exit_code = 1
            for source in _sources(path):
                out.write(json.dumps(_triage_one(source, directory), ensure_ascii=False) + "\n")
        out.flush()
    finally:
        gc.unfreeze()
    return exit_code


def _triage_one(source: _Source, directory: Directory) -> dict[str, object]:
    if source.header is None:
        return _quarantine(source.path, None, source.error or "unreadable")
    parsed = parse_headers(source.header)
    problem = _unreadable_reason(source.header, parsed)
    if problem is not None:
        return _quarantine(source.path, parsed.message_id, problem)
    try:
        decision = match(parsed, directory)
    except Exception as error:  # one message must never stop the run; it is reported instead
        return _quarantine(source.path, parsed.message_id, f"matching failed: {error!r}")
    return _line(source.path, parsed.message_id, decision)


def _unreadable_reason(header: bytes, parsed: ParsedEmail) -> str | None:
    if not header.strip():
        return "empty message"
    unreadable = [defect for defect in parsed.defects if defect.startswith("message: unreadable")]
    if unreadable:
        return unreadable[0]
    if not (parsed.from_ or parsed.to or parsed.cc or parsed.message_id or parsed.date or parsed.subject):
        return "no readable header fields: " + ("; ".join(parsed.defects[:3]) or "not an email message")
    return None


def _line(path: str, message_id: str | None, decision: Decision) -> dict[str, object]:
    return {
        "path": path,
        "message_id": message_id,
        "decision": decision.action,
        "rule": decision.rule,
        "reason": decision.reason,
        "companies": list(decision.companies),
        "contacts": list(decision.contacts),
        "created_contacts": [
            {"email": new.email, "name": new.name, "company": new.company}
            for new in decision.created_contacts
        ],
        "error": None,
    }


def _quarantine(path: str, message_id: str | None, error: str) -> dict[str, object]:
    return {
        "path": path,
        "message_id": message_id,
        "decision": "quarantine",
        "rule": "unreadable",
        "reason": "the message could not be read",
        "companies": [],
        "contacts": [],
        "created_contacts": [],
        "error": error,
    }


def _sources(path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield from _folder(path)
    elif path.is_file():
        yield from _file(path)
    else:
        yield _Source(str(path), None, "no such file or directory")


def _folder(folder: Path) -> Iterator[_Source]:
    """A maildir's new/ and cur/ messages (never tmp/), or every file below a plain folder, in order."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as error:
        yield _Source(str(folder), None, f"cannot list folder: {error}")
        return
    names = {entry.name for entry in entries if entry.is_dir()}
    is_maildir = all(part in names for part in _MAILDIR_PARTS)
    for entry in entries:
        if entry.is_dir():
            if is_maildir and entry.name == "tmp":
                continue
            yield from _folder(Path(entry.path))
        elif entry.is_file() and not entry.name.startswith("."):
            yield from _file(Path(entry.path))


def _file(path: Path) -> Iterator[_Source]:
    try:
        handle = path.open("rb")
    except OSError as error:
        yield _Source(str(path), None, f"cannot open: {error.strerror or error}")
        return
    with handle:
        try:
            start = handle.read(5)
            handle.seek(0)
            if start == b"From " or path.suffix.lower() == ".mbox":
                yield from _mbox(path, handle)
            else:
                yield _Source(str(path), _read_header(handle))
        except OSError as error:
            yield _Source(str(path), None, f"cannot read: {error.strerror or error}")


def _read_header(handle: BinaryIO) -> bytes:
    """Read up to the blank line that ends the header block, and no further."""
    data = bytearray()
    searched = 0
    while len(data) < _MAX_HEADER_BYTES:
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


def _mbox(path: Path, handle: BinaryIO) -> Iterator[_Source]:
    """Each message of an mbox (mboxo or mboxrd) with its header block; bodies are skipped unread."""
    number = 0
    header: bytearray | None = None
    in_header = False
    previous_blank = True
    for line in handle:
        if line.startswith(b"From ") and previous_blank:
            if header is not None:
                yield _Source(f"{path}#{number}", bytes(header))
            number += 1
            header = bytearray()
            in_header = True
            previous_blank = False
            continue
        previous_blank = line in {b"\n", b"\r\n"}
        if header is None:
            # Text before the first "From " line belongs to no message.
            continue
        if in_header:
            header += line
            if previous_blank or len(header) > _MAX_HEADER_BYTES:
                in_header = False
    if header is not None:
        yield _Source(f"{path}#{number}", bytes(header))
    elif number == 0:
        yield _Source(str(path), None, "not an mbox file: no message starts with a 'From ' line")
