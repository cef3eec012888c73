"""Engagement analytics: average rates of the Email Engagement records, grouped and filtered."""
