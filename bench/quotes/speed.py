"""Time per call of `touchline.inbound.quotes.snippet` on the Enron corpus, beside the reply parser's
own reader on the same inputs (which must give the same snippets).

    .venv/bin/python -m bench.quotes.speed [--every 4] [--rounds 3] [--profile]

Inputs are built as `touchline.inbound.reading.snippet_of` builds them: each message of
$TOUCHLINE_CORPUS/enron (by default the sample in tests/fixtures/corpus) parsed with `parse_message`,
then its text body cut to SNIPPET_SOURCE_CHARS, or the text of its HTML body when it has no text
body, with the first From address as sender.

Prints:
- touchline's mean time per call over every input (the figure sync pays per message);
- the same with no gates (kit/regexgate.py): the reply headers asked wherever one may start, the
  signature and disclaimer patterns searched by `re` alone, as before gates were added; ratio and
  how many snippets differ (must be 0);
- on every Nth input (`--every`), the same beside mail-parser-reply's own `EmailMessage` doing the
  reading (its patterns built per message and searched at every character, as the library does;
  quotes.py's own steps are the same for both), with the ratio, and how many snippets differ
  (must be 0);
- with `--profile`, the top costs of touchline's path (cProfile, by own time).

Times are this process's CPU time (time.process_time), which other load on a shared machine
disturbs less than wall time. Rounds alternate between the two; ratios are given from each one's
fastest round and as the median of per-round ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mailparser_reply import EmailMessage
from tests.corpus import corpus_root

from touchline.inbound import quotes
from touchline.inbound.parse import parse_message
from touchline.inbound.reading import SNIPPET_SOURCE_CHARS
from touchline.kit import regexgate

REPO = Path(__file__).resolve().parents[2]
CORPUS = corpus_root() / "enron"
Input = tuple[str, str | None]


def corpus_inputs() -> list[Input]:
    """What `snippet_of` feeds `snippet` for each corpus message that has a body."""
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}; set TOUCHLINE_CORPUS to the folder holding enron/")
    inputs: list[Input] = []
    for path in sorted(p for p in CORPUS.rglob("*") if p.is_file()):
        parsed = parse_message(path.read_bytes())
        sender = parsed.from_[0].address if parsed.from_ else None
        if parsed.text_body:
            inputs.append((parsed.text_body[:SNIPPET_SOURCE_CHARS], sender))
        elif parsed.html_body:
            text = quotes.html_to_text(parsed.html_body[: SNIPPET_SOURCE_CHARS * 4])
            inputs.append((text[:SNIPPET_SOURCE_CHARS], sender))
    return inputs


@contextmanager
def library_reader() -> Iterator[None]:
    """`snippet` with mail-parser-reply's own reader in place of touchline's."""
    fast = quotes._Message
    quotes._Message = EmailMessage
    try:
        yield
    finally:
        quotes._Message = fast


@contextmanager
def ungated_reader() -> Iterator[None]:
    """`snippet` with touchline's reader, its patterns built without gates: the reply headers
    asked at every place a header may start, signatures and disclaimers searched by `re` alone."""
    saved = (quotes._PATTERNS.copy(), quotes._GLUED_SEPARATOR_GATE, regexgate.Gate.of)
    quotes._PATTERNS.clear()
    quotes._GLUED_SEPARATOR_GATE = None
    regexgate.Gate.of = classmethod(lambda _cls, _pattern: None)
    try:
        yield
    finally:
        quotes._PATTERNS.clear()
        quotes._PATTERNS.update(saved[0])
        quotes._GLUED_SEPARATOR_GATE = saved[1]
        regexgate.Gate.of = saved[2]


def timed(inputs: list[Input]) -> tuple[float, list[str]]:
    """Mean CPU milliseconds per call, and the snippets."""
    started = time.process_time()
    snippets = [quotes.snippet(text, sender=sender) for text, sender in inputs]
    return (time.process_time() - started) / len(inputs) * 1000, snippets


def library_timed(inputs: list[Input]) -> tuple[float, list[str]]:
    with library_reader():
        return timed(inputs)


def ungated_timed(inputs: list[Input]) -> tuple[float, list[str]]:
    with ungated_reader():
        return timed(inputs)


def best_of(rounds: int, run: Callable[[], tuple[float, list[str]]]) -> float:
    return min(run()[0] for _ in range(rounds))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    options.add_argument("--every", type=int, default=4, help="compare with the library on every Nth input")
    options.add_argument("--rounds", type=int, default=3)
    options.add_argument("--profile", action="store_true", help="print the top costs of touchline's path")
    args = options.parse_args()

    inputs = corpus_inputs()
    timed(inputs[:50])  # patterns are built once per process: not part of any round
    library_timed(inputs[:5])
    every_call = best_of(args.rounds, lambda: timed(inputs))
    print(f"inputs: {len(inputs)} from {CORPUS}")
    print(f"touchline: {every_call:.3f} ms per call (fastest of {args.rounds} rounds)")
    ungated: list[float] = []
    for _ in range(args.rounds):
        ungated_ms, expected = ungated_timed(inputs)
        fast_ms, got = timed(inputs)
        ungated.append(ungated_ms / fast_ms)
    differ = sum(a != b for a, b in zip(expected, got, strict=True))
    print(
        f"touchline without gates: {ungated_ms:.3f} ms per call (last round); "
        f"median ratio {statistics.median(ungated):.1f}x; snippets that differ: {differ}"
    )

    sample = inputs[:: args.every]
    fast_times: list[float] = []
    library_times: list[float] = []
    differences = 0
    for _ in range(args.rounds):
        library_ms, expected = library_timed(sample)
        fast_ms, got = timed(sample)
        library_times.append(library_ms)
        fast_times.append(fast_ms)
        differences = max(differences, sum(a != b for a, b in zip(expected, got, strict=True)))
    ratios = [slow / fast for slow, fast in zip(library_times, fast_times, strict=True)]
    print(
        f"every {args.every}th input ({len(sample)}): library reader {min(library_times):.3f} ms, "
        f"touchline {min(fast_times):.3f} ms per call; ratio {min(library_times) / min(fast_times):.1f}x "
        f"(median of rounds {statistics.median(ratios):.1f}x); snippets that differ: {differences}"
    )

    if args.profile:
        profile = cProfile.Profile()
        profile.runcall(timed, inputs)
        pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
