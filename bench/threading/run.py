"""Threading against an independent References/In-Reply-To threader, on real mail.

    .venv/bin/python bench/threading/run.py PATH [PATH ...]

PATH is an mbox file, a maildir or a folder of one-message files (searched recursively).

The reference is a reading of Jamie Zawinski's threading algorithm written here for the bench and
sharing no code with touchline: the stdlib parser reads the headers; ids are the bracketed tokens,
whitespace removed; References gives a message's ancestors in order, and without References the
parent is the last bracketed token of In-Reply-To (older clients write the author's address before
the id, never after it); containers link parent to child unless the link would make a loop; a
conversation is one tree of the root set. Subjects are not used (JWZ's subject pass is off), so
only what the headers say is compared.

Printed, over the messages whose headers name a parent:
- parent agreement: of the (message, named parent) pairs where the parent is among the messages,
  the share both threaders put in one conversation (goal >= 99%);
- pairwise agreement (Rand index) over all pairs of those messages and their parents: the share of
  pairs both threaders put together, or both apart.
"""

from __future__ import annotations

import argparse
import email.parser
import email.policy
import mailbox
import re
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from touchline.inbound.parse import parse_headers
from touchline.inbound.thread import ThreadMessage, thread_messages

_BRACKETED = re.compile(r"<([^<>]*)>")
_PARSER = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def raw_messages(path: Path) -> Iterator[bytes]:
    if path.is_dir():
        for file in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            yield from raw_messages(file)
        return
    with path.open("rb") as handle:
        start = handle.read(5)
    if start == b"From ":
        box = mailbox.mbox(path, create=False)
        for key in box.iterkeys():
            yield box.get_bytes(key)
        return
    yield path.read_bytes()


def _ids(value: str | None) -> list[str]:
    return ["".join(token.split()) for token in _BRACKETED.findall(str(value or "")) if token.strip()]


class _Node:
    __slots__ = ("parent",)

    def __init__(self) -> None:
        self.parent: _Node | None = None

    def root(self) -> _Node:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    def descends_from(self, other: _Node) -> bool:
        node: _Node | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


def reference_conversations(raws: list[bytes]) -> tuple[list[int | None], list[list[str]]]:
    """Per message: its conversation (a root's id) and the ids its headers name as ancestors."""
    table: dict[str, _Node] = {}
    own: list[_Node] = []
    named: list[list[str]] = []
    for raw in raws:
        headers = _PARSER.parsebytes(raw)
        mine = _ids(str(headers.get("Message-ID", "")))[:1]
        node = table.setdefault(mine[0], _Node()) if mine else _Node()
        if mine and node in own:  # a second message with a taken id: a node of its own
            node = _Node()
        ancestors = _ids(headers.get("References"))
        if not ancestors:
            ancestors = _ids(headers.get("In-Reply-To"))[-1:]
        ancestors = [a for a in dict.fromkeys(ancestors) if a not in mine]
        previous: _Node | None = None
        for ancestor_id in ancestors:
            ancestor = table.setdefault(ancestor_id, _Node())
            if previous is not None and ancestor.parent is None and not previous.descends_from(ancestor):
                ancestor.parent = previous
            previous = ancestor
        if previous is not None and not previous.descends_from(node):
            node.parent = previous  # the last reference is the parent, and it wins
        own.append(node)
        named.append(ancestors)
    return [id(node.root()) for node in own], named


def touchline_conversations(raws: list[bytes]) -> tuple[list[str], list[str | None]]:
    parsed = [parse_headers(raw) for raw in raws]
    messages = [ThreadMessage.from_parsed(email) for email in parsed]
    keys = [message.key for message in messages]
    conversation_of: dict[str, str] = {}
    for conversation in thread_messages(messages):
        for key in conversation.message_keys:
            conversation_of[key] = conversation.key
    return [conversation_of[key] for key in keys], [email.message_id for email in parsed]


def _pairs(count: int) -> int:
    return count * (count - 1) // 2


def main() -> int:
    arguments = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    arguments.add_argument("paths", nargs="+", type=Path)
    options = arguments.parse_args()
    raws = [raw for path in options.paths for raw in raw_messages(path)]
    reference, named = reference_conversations(raws)
    ours, own_ids = touchline_conversations(raws)
    index_of = {"".join(message_id.split()): n for n, message_id in enumerate(own_ids) if message_id}

    links = [(n, index_of[ids[-1]]) for n, ids in enumerate(named) if ids and ids[-1] in index_of]
    with_parents = sum(1 for ids in named if ids)
    both = sum(
        1 for child, parent in links if ours[child] == ours[parent] and reference[child] == reference[parent]
    )
    print(
        f"messages: {len(raws)}; naming a parent in their headers: {with_parents}; "
        f"parent present: {len(links)}"
    )
    if not links:
        print("no message names a parent that is among the messages: nothing to compare")
        return 0
    print(f"parent agreement: {both}/{len(links)} = {100 * both / len(links):.2f}%")

    members = sorted({n for link in links for n in link})
    together_ours = Counter(ours[n] for n in members)
    together_reference = Counter(reference[n] for n in members)
    together_both = Counter((ours[n], reference[n]) for n in members)
    total = _pairs(len(members))
    same_ours = sum(_pairs(c) for c in together_ours.values())
    same_reference = sum(_pairs(c) for c in together_reference.values())
    same_both = sum(_pairs(c) for c in together_both.values())
    agreeing = total - same_ours - same_reference + 2 * same_both
    print(
        f"pairwise agreement (Rand index) over {len(members)} messages: {100 * agreeing / max(total, 1):.4f}%"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
