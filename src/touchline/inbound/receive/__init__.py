"""The log address: mail BCC'd or forwarded to it over SMTP or HTTP, and the unassigned list."""
