"""SPEC §5, public (shared) accounts and the From field: every rule as a pure decision."""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest

from touchline.outbound.compose.senders import (
    ACCOUNT_OWNER,
    TeamUser,
    check_from,
    from_choices,
    public_account_usage_change,
    sender_after_edit,
)

ANA = TeamUser(uuid.UUID(int=1), "ana@touchline.example", "Ana", may_email_on_behalf=True, has_mailbox=True)
SUCCESS = TeamUser(uuid.UUID(int=2), "success@touchline.example", "Success Team", True, True, True)
BILLING = TeamUser(uuid.UUID(int=3), "billing@touchline.example", "Billing", True, True, True)
BOB = TeamUser(
    uuid.UUID(int=4),
    "bob@touchline.example",
    "Bob",
    public_account_usage=False,
    may_email_on_behalf=True,
    has_mailbox=True,
)
ADMIN = TeamUser(
    uuid.UUID(int=5), "admin@touchline.example", "Admin", may_email_on_behalf=True, has_mailbox=True
)
USERS = (ANA, SUCCESS, BILLING, BOB, ADMIN)


# Each user decides for themself whether their address is public; nobody else, admins included.
def test_only_the_user_themself_switches_public_usage() -> None:
    assert public_account_usage_change(BOB, BOB, turn_on=True).allowed
    refused = public_account_usage_change(ADMIN, BOB, turn_on=True)
    assert not refused.allowed
    assert "admins included" in refused.reason
    assert not public_account_usage_change(ADMIN, SUCCESS, turn_on=False).allowed


# It can only be switched on when the role has email_on_my_behalf and the user has a connected mailbox.
def test_switching_on_needs_the_permission_and_a_mailbox() -> None:
    no_permission = replace(BOB, may_email_on_behalf=False)
    decision = public_account_usage_change(no_permission, no_permission, turn_on=True)
    assert not decision.allowed
    assert "Email on my behalf" in decision.reason
    no_mailbox = replace(BOB, has_mailbox=False)
    decision = public_account_usage_change(no_mailbox, no_mailbox, turn_on=True)
    assert not decision.allowed
    assert "Connect your mailbox" in decision.reason
    assert public_account_usage_change(no_mailbox, no_mailbox, turn_on=False).allowed


def test_an_address_stops_being_public_when_a_condition_is_lost() -> None:
    assert SUCCESS.offers_public_address
    assert not replace(SUCCESS, may_email_on_behalf=False).offers_public_address
    assert not replace(SUCCESS, has_mailbox=False).offers_public_address
    assert not replace(SUCCESS, public_account_usage=False).offers_public_address


# From choices: own address, every public address, and Account Owner for company-level sends.
def test_from_choices_of_a_single_email() -> None:
    choices = from_choices(ANA, USERS, on_behalf_of_company=False)
    assert [choice.key for choice in choices] == [
        "ana@touchline.example",
        "billing@touchline.example",
        "success@touchline.example",
    ]
    assert [choice.kind for choice in choices] == ["own", "public", "public"]
    assert choices[1].label == "Billing <billing@touchline.example>"


def test_from_choices_of_a_company_level_send_start_with_account_owner() -> None:
    choices = from_choices(ANA, USERS, on_behalf_of_company=True)
    assert [choice.key for choice in choices] == [
        ACCOUNT_OWNER,
        "ana@touchline.example",
        "billing@touchline.example",
        "success@touchline.example",
    ]
    assert choices[0].label == "Account Owner"


def test_a_public_composer_appears_once_as_their_own_address() -> None:
    choices = from_choices(SUCCESS, USERS, on_behalf_of_company=False)
    assert [choice.key for choice in choices] == ["success@touchline.example", "billing@touchline.example"]
    assert choices[0].kind == "own"


def test_new_email_from_own_or_any_public_address() -> None:
    for address in ("ana@touchline.example", "Success@Touchline.example", "billing@touchline.example"):
        decision = check_from(address, ANA, USERS, on_behalf_of_company=False)
        assert decision.allowed, decision.reason


# Replying from a public address needs it to be a participant; otherwise: forward to it first.
def test_reply_from_a_public_address_that_is_a_participant() -> None:
    participants = {"jane@acme.example", "SUCCESS@touchline.example"}
    decision = check_from(
        "success@touchline.example", ANA, USERS, on_behalf_of_company=False, reply_participants=participants
    )
    assert decision.allowed
    assert decision.choice is not None
    assert decision.choice.user_id == SUCCESS.user_id


def test_reply_from_a_public_address_outside_the_conversation_says_to_forward_first() -> None:
    decision = check_from(
        "billing@touchline.example",
        ANA,
        USERS,
        on_behalf_of_company=False,
        reply_participants={"jane@acme.example", "ana@touchline.example"},
    )
    assert not decision.allowed
    assert decision.reason == (
        "billing@touchline.example is not part of this conversation, so you cannot reply from it. "
        "Forward the email to billing@touchline.example first, then reply from there."
    )


def test_reply_from_ones_own_address_needs_no_participation() -> None:
    decision = check_from(
        "ana@touchline.example",
        ANA,
        USERS,
        on_behalf_of_company=False,
        reply_participants={"jane@acme.example"},
    )
    assert decision.allowed


# Sending from a non-public address of another user is refused.
@pytest.mark.parametrize("replying", [False, True])
def test_another_users_private_address_is_refused(replying: bool) -> None:
    participants = {"bob@touchline.example"} if replying else None
    decision = check_from(
        "bob@touchline.example", ANA, USERS, on_behalf_of_company=False, reply_participants=participants
    )
    assert not decision.allowed
    assert "another user's private address" in decision.reason


def test_an_address_that_lost_its_mailbox_is_private_again() -> None:
    users = (ANA, replace(SUCCESS, has_mailbox=False))
    assert not check_from("success@touchline.example", ANA, users, on_behalf_of_company=False).allowed


@pytest.mark.parametrize("address", ["stranger@elsewhere.example", "not an address"])
def test_addresses_of_nobody_are_refused(address: str) -> None:
    decision = check_from(address, ANA, USERS, on_behalf_of_company=False)
    assert not decision.allowed


def test_account_owner_only_for_emails_on_behalf_of_a_company() -> None:
    assert check_from(ACCOUNT_OWNER, ANA, USERS, on_behalf_of_company=True).allowed
    assert not check_from(ACCOUNT_OWNER, ANA, USERS, on_behalf_of_company=False).allowed
    replying = check_from(
        ACCOUNT_OWNER, ANA, USERS, on_behalf_of_company=True, reply_participants={"jane@acme.example"}
    )
    assert not replying.allowed


def test_every_offered_choice_passes_the_check() -> None:
    for company_level in (False, True):
        for choice in from_choices(ANA, USERS, on_behalf_of_company=company_level):
            assert check_from(choice.key, ANA, USERS, on_behalf_of_company=company_level).allowed


# A scheduled email whose sender is no longer a From choice gets the first choice; the editor is told.
def test_scheduled_email_keeps_a_sender_that_is_still_a_choice() -> None:
    for current in (ACCOUNT_OWNER, "success@touchline.example", "ana@touchline.example"):
        after = sender_after_edit(current, ANA, USERS)
        assert not after.changed
        assert after.notice is None
        assert after.sender.key == current


def test_scheduled_email_from_a_sender_no_longer_public_falls_back_to_account_owner() -> None:
    users = (ANA, replace(SUCCESS, public_account_usage=False), BILLING, BOB)
    after = sender_after_edit("success@touchline.example", ANA, users)
    assert after.changed
    assert after.sender.key == ACCOUNT_OWNER
    assert after.notice is not None
    assert "success@touchline.example" in after.notice
    assert "Account Owner" in after.notice


def test_scheduled_email_from_a_sender_that_never_was_a_choice_falls_back_too() -> None:
    after = sender_after_edit("bob@touchline.example", ANA, USERS)
    assert after.changed
    assert after.sender.key == ACCOUNT_OWNER
