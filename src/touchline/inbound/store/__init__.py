"""Storing kept mail: one email per workspace, its holders, links, conversation and Last Touch."""
