"""Sending: composing emails to endusers and delivering them."""
