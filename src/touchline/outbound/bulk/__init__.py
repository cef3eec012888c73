"""Bulk sends: one template to the endusers that filters select."""

from typing import Final

QUEUE_JOB: Final = "outbound.bulk_queue"
"""The job that makes a bulk send's emails; kwargs: bulk_id. Sent again when its A/B test is decided."""
TESTING: Final = "testing"
"""A bulk send whose first batch went out to its A/B test's variants; the rest wait for the winner."""
