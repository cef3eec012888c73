"""`touchline triage`: decide keep or ignore for messages on disk against a directory file, offline.

Reads mbox files, maildirs, folders of message files (recursively) and single message files as
`touchline import mail` does (`touchline.inbound.mailfiles`); reads only each message's header block,
as sync does; prints one JSON line per message. A message or item that cannot be read is reported as
"quarantine" with its error and the run goes on.

Exit codes: 0 when every path exists (quarantined messages included), 1 when a path does not
exist (it is reported as a quarantine line too), 2 when the directory file is unusable.
"""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from touchline.inbound.directory import Directory, DirectoryError
from touchline.inbound.mailfiles import MailItem, mail_items, unreadable_reason
from touchline.inbound.match import Decision, match
from touchline.inbound.parse import parse_headers


def run_triage(directory_file: Path, paths: Sequence[Path], out: TextIO) -> int:
    """Print one JSON decision line per message under `paths`; return the process exit code."""
    try:
        directory = Directory.load(directory_file)
    except RecursionError:
        print(f"touchline triage: cannot use directory {directory_file}: nested too deeply", file=sys.stderr)
        return 2
    except (OSError, ValueError, DirectoryError) as error:
        # ValueError: JSON the decoder refuses, or a number too long to read as an integer.
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
            for item in mail_items(path, headers_only=True):
                out.write(json.dumps(_triage_one(item, directory), ensure_ascii=False) + "\n")
        out.flush()
    finally:
        gc.unfreeze()
    return exit_code


def _triage_one(item: MailItem, directory: Directory) -> dict[str, object]:
    if item.raw is None:
        return _quarantine(item.label, None, item.error or "unreadable")
    parsed = parse_headers(item.raw)
    problem = unreadable_reason(item.raw, parsed)
    if problem is not None:
        return _quarantine(item.label, parsed.message_id, problem)
    try:
        decision = match(parsed, directory)
    except Exception as error:  # one message must never stop the run; it is reported instead
        return _quarantine(item.label, parsed.message_id, f"matching failed: {error!r}")
    return _line(item.label, parsed.message_id, decision)


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
