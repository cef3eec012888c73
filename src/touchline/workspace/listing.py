"""What a companies or contacts table shows, as its page's address says: the search, the filters and
the column it is sorted by; and the addresses of its column headings and pages, which keep the rest.

Pure: the pages parse the query into a `Listing`, and the repository's filters take its parts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Final, Literal
from urllib.parse import urlencode

from touchline.workspace.repository import LastTouch

Touched = Literal["", "7", "30", "90", "stale30", "stale90", "never"]
TOUCHED_CHOICES: Final[tuple[tuple[Touched, str], ...]] = (
    ("", "Any time"),
    ("7", "In the last 7 days"),
    ("30", "In the last 30 days"),
    ("90", "In the last 90 days"),
    ("stale30", "Not in the last 30 days"),
    ("stale90", "Not in the last 90 days"),
    ("never", "Never"),
)
NO_OWNER: Final = "none"


@dataclass(frozen=True)
class Listing:
    q: str = ""
    sort: str = "name"
    descending: bool = False
    owner: str = ""
    """"" for anyone, NO_OWNER, or a user's id."""
    touched: Touched = ""

    @property
    def filtered(self) -> bool:
        return bool(self.q or self.owner or self.touched)

    def owner_id(self) -> uuid.UUID | None:
        if self.owner in ("", NO_OWNER):
            return None
        return uuid.UUID(self.owner)

    def last_touch(self) -> LastTouch | None:
        if self.touched == "":
            return None
        if self.touched == "never":
            return LastTouch("never")
        if self.touched.startswith("stale"):
            return LastTouch("stale", int(self.touched.removeprefix("stale")))
        return LastTouch("within", int(self.touched))

    def query(self) -> str:
        """This listing as a query string (the page left out), for links that keep it."""
        params = {
            "q": self.q,
            "sort": "" if self.sort == "name" else self.sort,
            "dir": "desc" if self.descending else "",
            "owner": self.owner,
            "touched": self.touched,
        }
        return urlencode({name: value for name, value in params.items() if value})

    def sorted_by(self, column: str) -> str:
        """The address of a column heading: sorted by it, the other way round when it already is."""
        flipped = replace(self, sort=column, descending=column == self.sort and not self.descending)
        return f"?{flipped.query()}"

    def aria_sort(self, column: str) -> str:
        if column != self.sort:
            return "none"
        return "descending" if self.descending else "ascending"


def parse_owner(owner: str) -> str:
    """An owner filter as written, checked: "", NO_OWNER or a user id (ValueError otherwise)."""
    owner = owner.strip()
    if owner not in ("", NO_OWNER):
        uuid.UUID(owner)
    return owner
