"""HTML from mail, made safe to show: scripts, event handlers, forms and remote frames removed."""

from __future__ import annotations

import nh3

_ALLOWED_TAGS = nh3.ALLOWED_TAGS - {"img"} | {"font", "center"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {
    **{tag: set(attributes) for tag, attributes in nh3.ALLOWED_ATTRIBUTES.items()},
    "font": {"color", "face", "size"},
    "td": {"colspan", "rowspan", "align", "valign"},
    "th": {"colspan", "rowspan", "align", "valign"},
    "table": {"summary"},
}


def sanitise_html(html: str) -> str:
    """Keep structure and text; drop active content. Images are dropped too: remote images in customer
    mail are tracking pixels as often as not, and showing them would report every view back."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
    )
