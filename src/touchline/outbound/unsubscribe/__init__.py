"""Unsubscribing from bulk and sequence emails: signed one-click links (RFC 8058) and their records."""
