"""A/B tests of template variants on a bulk send or a sequence step: assignment, running counts, the
sequential test after engagement refreshes, and the recorded decision (SPEC §8)."""

from typing import Final

EVALUATE_JOB: Final = "outbound.experiments_evaluate"
"""The periodic job that re-evaluates every running experiment from its engagement records."""
