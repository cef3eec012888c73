"""Where the shared real-mail corpus lives, for tests marked `corpus`.

The corpus sits beside the repository (`../shared/corpus`) or wherever TOUCHLINE_CORPUS points.
Without it these tests skip, saying why; on CI (`CI=true`) a missing corpus fails them instead, so a
broken checkout cannot pass by skipping.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[1]


def corpus_root() -> Path:
    return Path(os.environ.get("TOUCHLINE_CORPUS", REPOSITORY.parent / "shared" / "corpus"))


def corpus_folder(name: str) -> Path:
    """The corpus sub-folder `name` (`enron`, `replies`); skips, or fails on CI, when it is missing."""
    folder = corpus_root() / name
    if folder.is_dir():
        return folder
    message = (
        f"the {name} corpus is not at {folder}; put the shared corpus beside the repository "
        "or set TOUCHLINE_CORPUS to its folder"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
