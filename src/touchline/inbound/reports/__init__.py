"""Delivery reports (bounces) and automatic replies found in synced and logged mail."""
