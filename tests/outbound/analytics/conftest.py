"""The engagement tests' job queue: jobs run as they are sent (after the commit), notifications recorded."""

from tests.outbound.engagement.conftest import notifications

__all__ = ["notifications"]
