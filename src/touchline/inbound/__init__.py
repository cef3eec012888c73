"""Inbound mail: fetch, receive, parse, match, store and timeline."""
