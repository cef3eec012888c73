"""Experiment rules, free of I/O: labels, the metric's warning, and the stable split of endusers."""

from __future__ import annotations

import hashlib
import string
import uuid
from typing import Final, Literal

Metric = Literal["reply_rate", "human_click_rate", "open_rate"]
METRICS: Final[tuple[Metric, ...]] = ("reply_rate", "human_click_rate", "open_rate")
OPEN_RATE_WARNING: Final = (
    "open rate is inflated by mail proxies and scanners that fetch every image: a winner on opens may "
    "be the variant machines open more; prefer reply rate or human click rate"
)
MAX_VARIANTS: Final = 10
LABELS: Final = string.ascii_uppercase[:MAX_VARIANTS]


def metric_warning(metric: Metric) -> str | None:
    return OPEN_RATE_WARNING if metric == "open_rate" else None


def in_first_batch(experiment_id: uuid.UUID, contact_id: uuid.UUID, share: float) -> bool:
    """Whether an enduser is in the first batch of a bulk send's test: a stable hash, independent of
    the one that picks the variant, below `share`."""
    digest = hashlib.sha256(b"first-batch" + experiment_id.bytes + contact_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") < share * 2**64


def assigned_index(experiment_id: uuid.UUID, contact_id: uuid.UUID, variants: int) -> int:
    """The variant an enduser gets: a stable hash of (experiment, enduser), evenly spread, so the
    same enduser always gets the same variant of an experiment and different experiments split
    the audience independently."""
    digest = hashlib.sha256(experiment_id.bytes + contact_id.bytes).digest()
    return int.from_bytes(digest[:8], "big") % variants
