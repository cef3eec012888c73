"""Stored templates: the team's templates, checked when saved and rendered for each recipient."""
