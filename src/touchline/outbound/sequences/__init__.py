"""Sequences: enduser playbooks of template steps, run by the worker."""
