"""The real-mail dataset that tests marked `corpus` read.

Two datasets share one layout (`enron/`, `enron-MANIFEST.tsv`, `replies/`):
- the full corpus (21,641 Enron messages), read when TOUCHLINE_CORPUS points at it;
- otherwise the sample kept in the repository, tests/fixtures/corpus (its README.md says what it
  holds and how it was chosen), so a clone with nothing beside it runs every corpus test.

The benchmarks that read real mail (bench/triage, bench/quotes) take their dataset from here too.

Tests take their expectations from the dataset they run on: its manifest lists every Enron file with
its size and sha256, so no count of one dataset is written into a test.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]
SAMPLE = REPOSITORY / "tests" / "fixtures" / "corpus"


def corpus_root() -> Path:
    """TOUCHLINE_CORPUS when set, else the sample kept in the repository."""
    configured = os.environ.get("TOUCHLINE_CORPUS")
    return Path(configured) if configured else SAMPLE


def corpus_folder(name: str) -> Path:
    """The dataset's sub-folder `name` (`enron`, `replies`).

    Only a TOUCHLINE_CORPUS that points at the wrong folder can miss it; that fails rather than
    skips, since the sample in the repository is always there to fall back on by leaving it unset.
    """
    folder = corpus_root() / name
    if not folder.is_dir():
        pytest.fail(
            f"the {name} corpus is not at {folder}; point TOUCHLINE_CORPUS at a folder holding it, "
            "or unset it to use the sample in tests/fixtures/corpus"
        )
    return folder


@dataclass(frozen=True)
class ManifestEntry:
    path: str
    size: int
    sha256: str


def enron_manifest() -> dict[str, ManifestEntry]:
    """The Enron manifest of the dataset in use: each file's path under `enron/`, byte size and sha256."""
    return _manifest(corpus_folder("enron").parent / "enron-MANIFEST.tsv")


@cache
def _manifest(path: Path) -> dict[str, ManifestEntry]:
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    return {row["path"]: ManifestEntry(row["path"], int(row["bytes"]), row["sha256"]) for row in rows}


def enron_files() -> list[Path]:
    """Every Enron message file of the dataset in use, sorted; exactly the files its manifest lists."""
    enron = corpus_folder("enron")
    files = sorted(path for path in enron.rglob("*") if path.is_file())
    listed = enron_manifest()
    assert listed, f"the Enron manifest beside {enron} lists no files"
    on_disk = {path.relative_to(enron).as_posix() for path in files}
    assert on_disk == set(listed), (
        f"{len(on_disk - set(listed))} files not in the manifest, {len(set(listed) - on_disk)} missing"
    )
    return files
