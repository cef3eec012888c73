"""Triage throughput and memory on the Enron corpus against a directory of 1,000,000 contacts.

    .venv/bin/python -m bench.triage.run [--rounds 7] [--companies 100000] [--contacts 1000000]

Prints, from one run:
- messages per second of the triage logic (headers-only parse + keep-or-ignore match; every round
  starts with cold caches, as one `touchline triage` run does; a warm pass, as in a long-running
  worker, is shown too) beside the stdlib floor, `email.parser.BytesHeaderParser` alone on the same
  in-memory bytes (whole messages as read from disk; the header blocks alone are shown too), with the
  ratio of the two (goal >= 0.8); the same triage with the stdlib header parser only is shown beside;
- peak RSS (resource.getrusage) of a separate `run_triage` process over the corpus files with the
  1,000,000-contact directory loaded (goal <= 400 MB), and of this process.

Times are this process's CPU time (time.process_time), which other load on a shared machine disturbs
less than wall time. Rounds alternate between the contenders; ratios are given from each one's
fastest round and as the median of per-round ratios.
The directory is generated deterministically: enron.com is internal, about half of the corpus's
external sender domains belong to companies (so both keep and ignore happen), some free-mail senders
are contacts, a few sender domains are blocklisted, and synthetic companies and contacts fill the rest.
"""

from __future__ import annotations

import argparse
import collections
import gc
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path

from tests.corpus import corpus_root

from touchline.inbound.directory import Directory
from touchline.inbound.match import match
from touchline.inbound.parse import clear_caches, header_block, parse_headers
from touchline.kit.domains import is_free_mail_domain, normalise_domain, registrable_domain

REPO = Path(__file__).resolve().parents[2]
CORPUS = corpus_root() / "enron"
SEED = 20_011_016
FIRST_NAMES = ("jane", "john", "maria", "li", "ahmed", "olga", "pierre", "yuki", "sam", "ana", "kofi", "eva")
LAST_NAMES = ("doe", "smith", "garcia", "chen", "khan", "ivanova", "martin", "sato", "o-neil", "silva")


def corpus_files() -> list[Path]:
    if not CORPUS.is_dir():
        sys.exit(f"corpus not found at {CORPUS}; set TOUCHLINE_CORPUS to the folder holding enron/")
    return [path for path in sorted(CORPUS.rglob("*")) if path.is_file()]


def write_directory(target: Path, files: list[Path], companies: int, contacts: int) -> None:
    """Stream a deterministic directory file; nothing big is held in memory while writing."""
    rng = random.Random(SEED)
    sender_domains: collections.Counter[str] = collections.Counter()
    external_people: set[str] = set()
    enron_people: collections.Counter[str] = collections.Counter()
    for path in files:
        parsed = parse_headers(path.read_bytes())
        for mailbox in (*parsed.from_, *parsed.to, *parsed.cc):
            domain = mailbox.address.rpartition("@")[2]
            if domain == "enron.com":
                enron_people[mailbox.address] += 1
            else:
                external_people.add(mailbox.address)
        if parsed.sender and not parsed.sender.endswith("@enron.com"):
            sender_domains[parsed.sender.rpartition("@")[2]] += 1
    ranked = sorted(
        (domain for domain in sender_domains if not is_free_mail_domain(domain) and "enron" not in domain),
        key=lambda domain: (-sender_domains[domain], domain),
    )
    real_company_domains = ranked[0::2]
    blocked_domains = ranked[1::2][:10]
    free_mail_people = sorted(
        person for person in external_people if is_free_mail_domain(person.rpartition("@")[2])
    )
    company_ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(companies)]

    with target.open("w", encoding="utf-8") as out:
        out.write('{"internal_domains": ["enron.com"], "create_contacts": true,\n"users": ')
        json.dump([person for person, _ in enron_people.most_common(50)], out)
        out.write(',\n"blocklist": ')
        json.dump([*blocked_domains, "no_address@enron.com"], out)
        out.write(',\n"companies": [\n')
        for index, company in enumerate(company_ids):
            domains = [f"acct{index:06d}-corp.com"]
            if index < len(real_company_domains):
                domains.append(real_company_domains[index])
            if index % 10 == 0:
                domains.append(f"acct{index:06d}.co.uk")
            out.write(("," if index else "") + json.dumps({"id": company, "domains": domains}) + "\n")
        out.write('],\n"contacts": [\n')
        written = 0
        for person in free_mail_people[0::3]:
            company = company_ids[rng.randrange(companies)]
            out.write(("," if written else "") + json.dumps({"email": person, "company": company}) + "\n")
            written += 1
        while written < contacts:
            index = rng.randrange(companies)
            local = f"{rng.choice(FIRST_NAMES)}.{rng.choice(LAST_NAMES)}{written}"
            entry = {"email": f"{local}@acct{index:06d}-corp.com", "company": company_ids[index]}
            out.write("," + json.dumps(entry) + "\n")
            written += 1
        out.write("]}\n")


def timed_rounds(rounds: int, runs: dict[str, Callable[[], None]]) -> dict[str, list[float]]:
    """Run every function once per round, interleaved, so that load on the machine hits all alike."""
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.process_time()
            run()
            seconds[name].append(time.process_time() - started)
    return seconds


def peak_rss_mb(who: int) -> float:
    return resource.getrusage(who).ru_maxrss / 1024


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        total_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        ram = f"{total_kb / 1024 / 1024:.1f} GiB RAM"
    except (OSError, StopIteration):
        ram = "unknown RAM"
    return f"{os.cpu_count()} CPUs (nproc), {cpu}, {ram}, Python {platform.python_version()}"


def child_run(directory_file: Path, scratch: Path) -> tuple[int, float, float]:
    """Run `run_triage` over the corpus files in a fresh process: (lines, seconds, peak RSS in MB)."""
    command = [
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; from touchline.inbound.triage import run_triage; "
        "sys.exit(run_triage(Path(sys.argv[1]), [Path(sys.argv[2])], sys.stdout))",
        str(directory_file),
        str(CORPUS),
    ]
    output = scratch / "out.jsonl"
    started = time.perf_counter()
    with output.open("w") as sink:
        subprocess.run(command, check=True, stdout=sink)
    seconds = time.perf_counter() - started
    with output.open() as lines:
        count = sum(1 for _ in lines)
    return count, seconds, peak_rss_mb(resource.RUSAGE_CHILDREN)


def contenders(directory: Directory, raws: list[bytes]) -> dict[str, Callable[[], None]]:
    """The floor and the triage variants, each a pass over the same in-memory messages."""
    blocks = [header_block(raw) for raw in raws]
    floor_parser = BytesHeaderParser()

    def floor_whole() -> None:
        for raw in raws:
            floor_parser.parsebytes(raw)

    def floor_blocks() -> None:
        for block in blocks:
            floor_parser.parsebytes(block)

    def forget_everything() -> None:
        clear_caches()
        normalise_domain.cache_clear()
        registrable_domain.cache_clear()
        directory.forget_standings()

    def triage() -> None:
        forget_everything()
        for raw in raws:
            match(parse_headers(raw), directory)

    def triage_warm() -> None:
        for raw in raws:
            match(parse_headers(raw), directory)

    def triage_stdlib_parser() -> None:
        forget_everything()
        for raw in raws:
            match(parse_headers(raw, stdlib_only=True), directory)

    return {
        "floor": floor_whole,
        "blocks": floor_blocks,
        "triage": triage,
        "warm": triage_warm,
        "stdlib": triage_stdlib_parser,
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    options.add_argument("--rounds", type=int, default=7)
    options.add_argument("--companies", type=int, default=100_000)
    options.add_argument("--contacts", type=int, default=1_000_000)
    args = options.parse_args()

    with tempfile.TemporaryDirectory(prefix="touchline-bench-") as scratch_name:
        scratch = Path(scratch_name)
        directory_file = scratch / "directory.json"
        files = corpus_files()
        write_directory(directory_file, files, args.companies, args.contacts)
        # The separate process runs first, while this one is still small: a child's peak RSS
        # includes what it shared with its parent before exec.
        lines, child_seconds, child_rss = child_run(directory_file, scratch)
        clear_caches()
        started = time.perf_counter()
        directory = Directory.load(directory_file)
        load_seconds = time.perf_counter() - started
    raws = [path.read_bytes() for path in files]
    runs = contenders(directory, raws)
    gc.freeze()
    seconds = timed_rounds(args.rounds, runs)
    own_rss = peak_rss_mb(resource.RUSAGE_SELF)
    decisions = collections.Counter(match(parse_headers(raw), directory).action for raw in raws)

    count = len(raws)
    rate = {name: count / min(times) for name, times in seconds.items()}

    def ratio(name: str, floor: str = "floor") -> str:
        per_round = [f / t for f, t in zip(seconds[floor], seconds[name], strict=True)]
        return f"{rate[name] / rate[floor]:.2f} best-of, {statistics.median(per_round):.2f} median of rounds"

    print(f"machine: {machine()}")
    print(f"corpus: {count} messages at {CORPUS}")
    print(f"directory: {dict(directory.counts)}, loaded in {load_seconds:.1f} s")
    print(f"decisions: {dict(decisions)}; {args.rounds} rounds")
    print(f"floor, BytesHeaderParser on whole messages:    {rate['floor']:8,.0f} msg/s")
    print(f"floor, BytesHeaderParser on header blocks:     {rate['blocks']:8,.0f} msg/s")
    print(f"triage (parse_headers + match), cold caches:   {rate['triage']:8,.0f} msg/s")
    print(f"triage, caches warm from the round before:     {rate['warm']:8,.0f} msg/s")
    print(f"triage with the stdlib header parser only:     {rate['stdlib']:8,.0f} msg/s")
    print(f"ratio triage / floor (goal >= 0.8): {ratio('triage')}")
    print(f"ratio triage / header-block floor:  {ratio('triage', 'blocks')}")
    print(f"ratio warm triage / floor:          {ratio('warm')}")
    print(f"ratio with the stdlib parser only:  {ratio('stdlib')}")
    print(
        f"run_triage process over the corpus files: {lines} lines in {child_seconds:.1f} s "
        f"(directory load included), peak RSS {child_rss:.0f} MB (goal <= 400 MB)"
    )
    print(f"peak RSS of this process (directory and corpus in memory): {own_rss:.0f} MB")


if __name__ == "__main__":
    main()
