"""The home page: what a user (or an admin, for the team) should look at first."""
