"""Delivering built messages through a mailbox's provider or the workspace's relay (SPEC §6)."""
