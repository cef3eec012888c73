"""Local fakes of the Gmail and Microsoft Graph APIs and their OAuth endpoints."""
