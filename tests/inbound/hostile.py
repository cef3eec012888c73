"""Hostile mail for the readers: inputs built to make a super-linear reader take minutes.

Each is a few hundred kilobytes to a few megabytes, far below the 25 MB a message may be, so a
reader that is linear and bounded reads them in well under a second.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
Reader = Callable[..., object]

FLOOR_SECONDS = 2.0
"""What any reading may take, whatever the baseline: room for a loaded machine."""
TIMES_BASELINE = 25
"""How many times the baseline (the same reader on ordinary text as long) a hostile input may cost."""

HEAD = (
    b"From: Kim <kim@team-a.example>\r\nTo: log@log.example\r\nSubject: hostile\r\n"
    b"Date: Mon, 1 Dec 2026 09:00:00 +0000\r\nMessage-ID: <hostile@team-a.example>\r\n"
)


def texts() -> dict[str, str]:
    """Body texts, plain or HTML, each aimed at some reader's regular expressions."""
    return {
        "unclosed <script": "<script" * 100_000,
        "unclosed <style": "<style " * 100_000,
        "unclosed <head>": "<head>x" * 100_000,
        "script never closed": "<script>" + "a<" * 200_000,
        "unclosed comment": "<!--" + "-" * 200_000,
        "unclosed attribute quote": '<a href="' + "x" * 400_000,
        "10^5 nested elements": "<div>" * 100_000 + "x" + "</div>" * 100_000,
        "10^5 nested blockquotes": "<blockquote>" * 100_000,
        "10^6 short lines": "a\n" * 1_000_000,
        "10^6 quoted lines": "> \n" * 1_000_000,
        "10^6 From lines": "\nFrom: a@b.example\n" * 100_000,
        "one line of >": ">" * 400_000,
        "one line of > and spaces": "> " * 200_000,
        "a run of quotes": '"' * 400_000,
        "whitespace then a mark": " " * 400_000 + "x",
        "dashes then a mark": "-" * 400_000 + "x",
        "separator soup": "-- x " * 100_000,
        "rule then text": "_" * 400_000 + "x",
        "colons": "a:" * 200_000,
        "digits and colons": "1:2" * 100_000,
        "angle brackets": "<" * 400_000,
        "at signs": "@" * 400_000,
        "On wrote": "On " * 130_000 + "wrote",
        "forward markers": "---------- Forwarded message ---------\n" * 10_000,
        "unclosed declarations": "<!" * 200_000,
        "unclosed end tags": "</" * 200_000,
        "unclosed processing instructions": "<?" * 200_000,
        "character references": "&#" * 200_000,
        "spans around divs": "<span>" * 50_000 + "<div>" * 20_000,
        "a line of dashes below another": "Hello\n" + "-" * 100_000 + "x",
        "a reply prefix then blanks": "re" + " " * 400_000 + "x",
        "blank lines": "Hi" + "\n" * 400_000 + "x",
        "a long From value": "\nFrom: " + "a" * 150_000 + "\nTo: x@y.example\nDate: Mon\n",
        "lines of blanks": "Hi" + " \n" * 200_000 + "x",
        "lines of tabs": "Hi" + "\n\t" * 200_000 + "x",
    }


def headers() -> dict[str, bytes]:
    """Header blocks (before the blank line) aimed at the header readers."""
    return {
        "one long header line": b"Subject: " + b"x " * 200_000 + b"\r\n",
        "10^5 headers": b"X-Filler: y\r\n" * 100_000,
        "10^5 continuation lines": b"Subject: x\r\n" + b" y\r\n" * 100_000,
        "encoded-word soup": b"Subject: " + b"=?utf-8?q?" * 40_000 + b"\r\n",
        "encoded words": b"Subject: " + b"=?utf-8?q?a?= " * 30_000 + b"\r\n",
        "quote runs in From": b'From: "' + b'\\"' * 200_000 + b"\r\n",
        "unclosed angle in To": b"To: <" + b"a" * 400_000 + b"\r\n",
        "comments in a Date": b"Date: 1" + b"(1" * 200_000 + b"\r\n",
        "spaces in a Date": b"Date: 1" + b" " * 400_000 + b"!\r\n",
        "Message-ID soup": b"References: " + b"<" * 400_000 + b"\r\n",
        "10^4 To lines": b"To: a@b.example\r\n" * 10_000,
        "DKIM signature of spaces": b"DKIM-Signature: v=1; a=rsa-sha256; d=team-a.example; s=s; "
        b"h=from; bh=; b=" + b" \r\n " * 20_000 + b"!\r\n",
    }


def message(body: str, *, content_type: str = "text/plain", head: bytes = HEAD) -> bytes:
    return (
        head
        + f"Content-Type: {content_type}; charset=utf-8\r\n\r\n".encode()
        + body.encode("utf-8", "surrogateescape")
    )


def nested_mime(levels: int = 300, lines: int = 1_000_000) -> bytes:
    """`levels` multiparts nested in each other, none closed, ending in `lines` short lines: the
    stdlib parser checks each line against every open boundary."""
    parts = [HEAD, b"MIME-Version: 1.0\r\n"]
    for level in range(levels):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{level}"\r\n\r\n--b{level}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\n")
    parts.append(b"a\r\n" * lines)
    return b"".join(parts)


def messages() -> dict[str, bytes]:
    """Whole messages: each text as a plain and as an HTML body, each header block, the MIME bomb."""
    found: dict[str, bytes] = {}
    for name, text in texts().items():
        found[f"plain: {name}"] = message(text)
        found[f"html: {name}"] = message(text, content_type="text/html")
    for name, block in headers().items():
        found[f"headers: {name}"] = HEAD + block + b"\r\nhello\r\n"
    found["DKIM-signed body of whitespace"] = (
        HEAD
        + b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=team-a.example; s=s; h=from; "
        + b"bh=AAAA; b=AAAA\r\n\r\n"
        + b" " * 400_000
        + b"x\r\n"
    )
    found["300 nested multiparts, 10^6 lines"] = nested_mime()
    found["10^5 parts"] = (
        HEAD
        + b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" * 100_000
        + b"--b--\r\n"
    )
    return found


def benign_like(hostile: bytes) -> bytes:
    """An ordinary message as long as `hostile`: prose in short paragraphs, the baseline's input."""
    paragraph = b"Thanks for the call today, here is the quote we talked about.\r\n\r\n"
    body = paragraph * (max(len(hostile) - len(HEAD), 0) // len(paragraph) + 1)
    return HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body


def seconds_in_child(reader: Callable[[T], object], argument: T, limit: float) -> float | None:
    """How long `reader(argument)` takes, timed in a forked process so that a reader stuck in one long
    call (a regular expression holds the interpreter's lock throughout) can be stopped: None if it
    had not returned within `limit` seconds."""
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)

    def run() -> None:
        started = time.perf_counter()
        reader(argument)
        sending.send(time.perf_counter() - started)

    child = context.Process(target=run, daemon=True)
    child.start()
    try:
        if receiving.poll(limit):
            seconds: float = receiving.recv()
            return seconds
        return None
    finally:
        child.kill()
        child.join()


def assert_linear(reader: Callable[[T], object], hostile: T, benign: T) -> None:
    """`reader` on `hostile` within FLOOR_SECONDS + TIMES_BASELINE x its time on `benign`."""
    reader(benign)  # patterns compiled, caches filled: the baseline measures reading only
    baseline = seconds_in_child(reader, benign, 60.0)
    assert baseline is not None, "the baseline itself did not finish"
    budget = FLOOR_SECONDS + TIMES_BASELINE * baseline
    spent = seconds_in_child(reader, hostile, budget)
    assert spent is not None, f"still reading after {budget:.2f}s (baseline {baseline:.3f}s)"
    assert spent <= budget, f"{spent:.2f}s, over {budget:.2f}s (baseline {baseline:.3f}s)"
