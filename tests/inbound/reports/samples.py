"""Delivery reports and automatic replies built for tests (collected ones: tests/fixtures/bounces)."""

from __future__ import annotations

DAEMON = "MAILER-DAEMON@mx.customer.example"


def delivery_report(
    returned_message_id: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{recipient}>: Recipient address rejected: User unknown",
    message_id: str = "<dsn-1@mx.customer.example>",
    to: str = "success@touchline.example",
) -> bytes:
    """An RFC 3464 report as Postfix writes it, returning the headers of `returned_message_id`."""
    return (
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 11 Mar 2025 08:00:00 +0000\r\n"
        f"From: Mail Delivery System <{DAEMON}>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n"
        "--B\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.customer.example\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Diagnostic-Code: {diagnostic.format(recipient=recipient)}\r\n"
        "\r\n"
        "--B\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"Message-ID: {returned_message_id}\r\n"
        f"From: success@touchline.example\r\n"
        f"To: {recipient}\r\n"
        "Subject: Renewal\r\n"
        "--B--\r\n"
    ).encode()


def out_of_office(sender: str, in_reply_to: str, *, message_id: str = "<ooo-1@customer.example>") -> bytes:
    return (
        f"Message-ID: {message_id}\r\n"
        "Date: Tue, 11 Mar 2025 08:05:00 +0000\r\n"
        f"From: {sender}\r\n"
        "To: success@touchline.example\r\n"
        "Subject: Automatic reply: Renewal\r\n"
        f"In-Reply-To: {in_reply_to}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "\r\n"
        "I am out of the office until Monday.\r\n"
    ).encode()
