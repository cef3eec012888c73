"""Workspaces, users, roles and permissions, settings, companies and contacts."""
