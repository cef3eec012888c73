"""Raw RFC 5322 bytes, or a header block alone, into a typed `ParsedEmail`; pure, and never raising."""

from touchline.inbound.parse.headers import clear_caches
from touchline.inbound.parse.message import header_block, parse_headers, parse_message
from touchline.inbound.parse.model import Address, Attachment, ParsedEmail

__all__ = [
    "Address",
    "Attachment",
    "ParsedEmail",
    "clear_caches",
    "header_block",
    "parse_headers",
    "parse_message",
]
