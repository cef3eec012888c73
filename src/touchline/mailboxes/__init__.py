"""Connected mailboxes: accounts, OAuth grants, encrypted credentials and providers."""
