"""Fetching mail from connected mailboxes: headers first, bodies only of what is kept."""
