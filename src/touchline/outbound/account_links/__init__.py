"""Emailing the invitation and password reset links admins issue (touchline.workspace.account_links)."""
