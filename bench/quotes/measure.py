"""How often `touchline.inbound.quotes.reply_text` agrees with the expected newest reply, per fixture set.

    .venv/bin/python -m bench.quotes.measure [--show-misses]

Reads the reply fixture sets under $TOUCHLINE_CORPUS/replies (by default the same sets kept in
tests/fixtures/corpus/replies):
- github, zapier, crisp, willdurand, mail-parser-reply: expectations in expectations.json beside
  this file, transcribed from each set's upstream tests;
- talon: standard replies (`.eml`; the reply is `<name>_reply_text` or "Hello"), HTML replies (the
  reply is "Hi. I am fine." then the signature) and signature bodies (the reply is the body without
  its `<name>_signature`);
- mailgun-forge: P/ bodies must lose exactly their `#sig#` lines, N/ bodies must stay whole.

Beside touchline's `reply_text` it prints mail-parser-reply's own `parse_reply`, for comparison.
A case agrees when every criterion holds on whitespace-collapsed text. For talon's replies, whose
expected text keeps the signature, a result agrees when it starts like the expected reply and holds
nothing beyond it (dropping the signature is what snippets want).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailparser_reply import EmailReplyParser
from mailparser_reply.constants import MAIL_LANGUAGES
from tests.corpus import corpus_root

from touchline.inbound.parse import parse_message
from touchline.inbound.quotes import html_to_text, reply_text

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
_SPACE = re.compile(r"\s+")
Reader = Callable[[str, str | None], str]


def replies_root() -> Path:
    return corpus_root() / "replies"


@dataclass(frozen=True)
class Case:
    name: str
    agrees: bool
    got: str
    expected: str


def squash(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def check(result: str, criteria: dict[str, object], whole_input: str) -> tuple[bool, str]:
    got = squash(result)
    expected_parts: list[str] = []
    agrees = True
    if criteria.get("whole"):
        agrees &= got == squash(whole_input)
        expected_parts.append("the whole input")
    if isinstance(equals := criteria.get("equals"), str):
        agrees &= got == squash(equals)
        expected_parts.append(f"= {equals!r}")
    if isinstance(starts := criteria.get("starts"), str):
        agrees &= got.startswith(squash(starts))
        expected_parts.append(f"starts {starts!r}")
    for piece in _strings(criteria.get("contains")):
        agrees &= squash(piece) in got
        expected_parts.append(f"has {piece!r}")
    for piece in _strings(criteria.get("excludes")):
        agrees &= squash(piece) not in got
        expected_parts.append(f"lacks {piece!r}")
    return agrees, "; ".join(expected_parts)


def _strings(value: object) -> list[str]:
    return [item for item in value if isinstance(item, str)] if isinstance(value, list) else []


def prefix_without_extra(result: str, expected_reply: str) -> bool:
    """Starts like the expected reply and holds nothing beyond it (a dropped signature is fine)."""
    got, expected = squash(result), squash(expected_reply)
    first_line = squash(expected_reply.strip().splitlines()[0]) if expected_reply.strip() else ""
    return (
        got.startswith(first_line) and expected.startswith(got[: len(expected)]) and len(got) <= len(expected)
    )


def expectation_sets(root: Path, read: Reader) -> Iterator[tuple[str, list[Case]]]:
    document = json.loads((HERE / "expectations.json").read_text(encoding="utf-8"))
    for set_name, spec in document["sets"].items():
        folder = root / set_name / spec["folder"]
        cases = []
        for file_name, criteria in spec["cases"].items():
            path = folder / file_name
            if not path.is_file():
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
            got = read(text, None)
            agrees, expected = check(got, criteria, text)
            cases.append(Case(file_name, agrees, squash(got)[:300], expected))
        yield set_name, cases


def sender_of(body_file: Path) -> str | None:
    sender_file = body_file.with_name(body_file.name.removesuffix("_body") + "_sender")
    return (
        sender_file.read_text(encoding="utf-8", errors="replace").strip() if sender_file.is_file() else None
    )


def talon_cases(root: Path, read: Reader) -> list[Case]:
    fixtures = root / "talon" / "tests" / "fixtures"
    cases = []
    for eml in sorted((fixtures / "standard_replies").glob("*.eml")):
        expected_file = eml.with_name(eml.stem + "_reply_text")
        expected = expected_file.read_text(encoding="utf-8") if expected_file.is_file() else "Hello"
        body = parse_message(eml.read_bytes()).text_body or ""
        got = read(body, None)
        cases.append(
            Case(f"standard_replies/{eml.name}", prefix_without_extra(got, expected), squash(got), expected)
        )
    for page in sorted((fixtures / "html_replies").glob("*.html")):
        expected = "Hi. I am fine.\n\nThanks,\nAlex"
        got = read(html_to_text(page.read_text(encoding="utf-8", errors="replace")), None)
        cases.append(
            Case(f"html_replies/{page.name}", prefix_without_extra(got, expected), squash(got), expected)
        )
    for body_file in sorted((fixtures / "signature" / "emails" / "stripped").glob("*_body")):
        signature_file = body_file.with_name(body_file.name.removesuffix("_body") + "_signature")
        if not signature_file.is_file():
            continue
        body = body_file.read_text(encoding="utf-8", errors="replace")
        signature = signature_file.read_text(encoding="utf-8", errors="replace").strip()
        sender = sender_of(body_file)
        cut = body.rfind(signature)
        expected = body[:cut] if cut >= 0 else body
        got = read(body, sender)
        cases.append(
            Case(f"signature/{body_file.name}", squash(got) == squash(expected), squash(got), expected)
        )
    return cases


def forge_cases(root: Path, read: Reader) -> list[Case]:
    dataset = root / "mailgun-forge" / "dataset"
    cases = []
    for body_file in sorted((dataset / "P").glob("*_body")) + sorted((dataset / "N").glob("*_body")):
        raw = body_file.read_text(encoding="utf-8", errors="replace")
        lines = raw.splitlines()
        text = "\n".join(line.removeprefix("#sig#") for line in lines)
        expected = "\n".join(line for line in lines if not line.startswith("#sig#"))
        sender = sender_of(body_file)
        got = read(text, sender)
        name = f"{body_file.parent.name}/{body_file.name}"
        cases.append(Case(name, squash(got) == squash(expected), squash(got)[:300], squash(expected)[:300]))
    return cases


def library_only(text: str, sender: str | None) -> str:
    """mail-parser-reply's own newest reply, without touchline's glue, for comparison."""
    return EmailReplyParser(languages=list(MAIL_LANGUAGES)).parse_reply(text) or ""


def measure(root: Path | None = None, read: Reader = reply_text) -> dict[str, list[Case]]:
    """Every set's cases; a set whose folder is missing is left out."""
    base = root or replies_root()
    results: dict[str, list[Case]] = {}
    builders: list[tuple[str, Callable[[Path, Reader], list[Case]]]] = [
        ("talon", talon_cases),
        ("mailgun-forge", forge_cases),
    ]
    for name, build in builders:
        if (base / name).is_dir():
            results[name] = build(base, read)
    for name, cases in expectation_sets(base, read):
        if (base / name).is_dir():
            results[name] = cases
    return dict(sorted(results.items()))


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    options.add_argument("--show-misses", action="store_true", help="print every case that disagrees")
    args = options.parse_args()
    root = replies_root()
    if not root.is_dir():
        raise SystemExit(f"reply fixtures not found at {root}; set TOUCHLINE_CORPUS")
    results = measure(root)
    baseline = measure(root, library_only)
    print(f"{'set':30} {'cases':>6} {'touchline':>10} {'library alone':>14}")
    for name, cases in results.items():
        agreed = sum(case.agrees for case in cases) / len(cases)
        alone = sum(case.agrees for case in baseline[name]) / len(cases)
        print(f"{name:30} {len(cases):6} {agreed:10.1%} {alone:14.1%}")
        if args.show_misses:
            for case in cases:
                if not case.agrees:
                    print(f"    {case.name}: got {case.got[:160]!r}")
                    print(f"        expected {case.expected[:160]!r}")


if __name__ == "__main__":
    main()
