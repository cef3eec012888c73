"""`touchline bounces classify`: the classifier sync and the log address use, run on files.

Reads message files, mbox files (each message is `path#n`, from 1) and folders (every `.eml` file
below, in order); prints one JSON line per message. A file that cannot be read gets a line with its
`error`, and the run goes on.
"""

from __future__ import annotations

import json
import mailbox
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from touchline.inbound.reports.classify import AutomaticReply, Verdict, classify_bytes
from touchline.inbound.reports.model import DeliveryReport


def run_classify(paths: Sequence[Path], out: TextIO) -> int:
    """Print one JSON line per message under `paths`; 1 when a path does not exist, else 0."""
    exit_code = 0
    for path in paths:
        if not path.exists():
            exit_code = 1
        for label, raw, error in _messages(path):
            line = _error_line(label, error) if raw is None else _line(label, raw)
            out.write(json.dumps(line, ensure_ascii=False) + "\n")
    out.flush()
    return exit_code


def verdict_line(path: str, verdict: Verdict) -> dict[str, object]:
    if isinstance(verdict, DeliveryReport):
        failed = verdict.recipients[0] if verdict.recipients else None
        return {
            "path": path,
            "kind": verdict.kind,
            "recipients": [one.address for one in verdict.recipients],
            "status": failed.status if failed else None,
            "diagnostic": failed.diagnostic if failed else None,
        }
    return {
        "path": path,
        "kind": "auto_reply" if isinstance(verdict, AutomaticReply) else None,
        "recipients": [],
        "status": None,
        "diagnostic": None,
    }


def _line(label: str, raw: bytes) -> dict[str, object]:
    try:
        return verdict_line(label, classify_bytes(raw))
    except Exception as error:  # one message must never stop the run; it is reported instead
        return _error_line(label, f"cannot classify: {error!r}")


def _error_line(label: str, error: str | None) -> dict[str, object]:
    return {"path": label, "kind": None, "recipients": [], "status": None, "diagnostic": None, "error": error}


def _messages(path: Path) -> Iterator[tuple[str, bytes | None, str | None]]:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*.eml") if p.is_file()):
            yield from _messages(file)
        return
    if not path.exists():
        yield str(path), None, "no such file or directory"
        return
    try:
        with path.open("rb") as handle:
            head = handle.read(5)
        if head == b"From " or path.suffix.lower() == ".mbox":
            box = mailbox.mbox(path, create=False)
            for number, key in enumerate(box.keys(), start=1):
                yield f"{path}#{number}", box.get_bytes(key), None
            return
        yield str(path), path.read_bytes(), None
    except OSError as error:
        yield str(path), None, f"cannot read: {error.strerror or error}"
