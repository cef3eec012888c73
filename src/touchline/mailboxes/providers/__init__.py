"""Mailbox providers: IMAP, Gmail and Microsoft Graph behind one contract (see ``base``)."""
