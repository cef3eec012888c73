"""A deterministic mailbox for the sync benchmark: one customer-success manager's last 180 days.

    .venv/bin/python -m bench.sync.generate [--messages 20000]   # prints what would be generated

The same seed and message count always give the same mailbox, up to its anchor: dates are laid out
backwards from the start of the current UTC day, so that the look-back window always covers them.

What it holds, by share of messages:
- about 30% customer mail: threads (Message-ID, In-Reply-To, References) between the mailbox owner,
  sometimes with a colleague in Cc, and people at a few hundred customer companies (some companies
  have two domains, some people write from a subdomain, a few known contacts use free-mail
  addresses); incoming in INBOX or the Customers, Support and Renewals folders, the owner's side in
  Sent ("Gesendet"), a few unsent drafts. touchline keeps exactly these;
- about 25% internal threads with colleagues (INBOX, Projects, Sent);
- about 33% newsletters, notifications and receipts from vendors (INBOX, Newsletters, Trash);
- about 8% people at free-mail or unknown domains who are not contacts, some answered;
- about 4% spam in Junk ("Unerwünscht").

Incoming mail carries realistic transport headers (Received, DKIM, ARC, Authentication-Results);
most person-to-person mail is text plus HTML; some messages have attachments of realistic sizes
(PDFs, images, office documents, calendar invitations) and signatures with an inline logo.
"""

from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import math
import quopri
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from email.header import Header
from email.utils import format_datetime, formataddr
from typing import Any

SEED = 20_000_180
DAYS = 180
# The special-use folders of the benchmark's Dovecot (tests/services/dovecot.py), named in German so
# that only their SPECIAL-USE flags identify them.
INBOX = "INBOX"
SENT = "Gesendet"
DRAFTS = "Entwürfe"
TRASH = "Papierkorb"
JUNK = "Unerwünscht"
CUSTOM_FOLDERS = ("Customers", "Support", "Renewals", "Projects", "Newsletters")
FOLDERS = (INBOX, SENT, DRAFTS, TRASH, JUNK, *CUSTOM_FOLDERS)

INTERNAL_DOMAIN = "harbourline-cs.com"
COMPANIES = 300
CATEGORY_SHARES = {"customer": 0.30, "internal": 0.25, "bulk": 0.33, "person": 0.08, "spam": 0.04}

FIRST_NAMES = (
    "Anna", "Ben", "Chloé", "David", "Elif", "Felix", "Grace", "Hannah", "Ibrahim", "Jonas", "Kai",
    "Lena", "Marta", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera",
    "Wei", "Ximena", "Yusuf", "Zoë", "Jürgen", "Søren", "Amélie", "Priya", "Kenji", "Fatima",
)  # fmt: skip
LAST_NAMES = (
    "Adams", "Bauer", "Castillo", "Dubois", "Eriksen", "Fischer", "García", "Hoffmann", "Ivanova",
    "Jensen", "Kowalski", "Lindqvist", "Müller", "Novak", "O'Brien", "Petrov", "Rossi", "Schmidt",
    "Tanaka", "Umarov", "Van Dijk", "Weber", "Xu", "Yilmaz", "Zimmermann", "Nakamura", "Okafor",
)  # fmt: skip
COMPANY_WORDS = (
    "bright", "north", "blue", "stone", "river", "cedar", "atlas", "nova", "pixel", "summit", "harbor",
    "lumen", "vertex", "orbit", "maple", "quartz", "ember", "delta", "falcon", "meadow", "iron",
    "silver", "crest", "pioneer", "zenith", "coral", "aurora", "granite", "willow", "beacon",
)  # fmt: skip
COMPANY_KINDS = (
    "logistics", "health", "labs", "systems", "retail", "energy", "foods", "media", "capital",
    "robotics", "travel", "analytics", "insurance", "software", "textiles", "pharma",
)  # fmt: skip
TLDS = ("com", "com", "com", "io", "de", "co.uk", "fr", "nl", "com.au", "ch")
FREE_MAIL = ("gmail.com", "outlook.com", "yahoo.com", "web.de", "gmx.de", "hotmail.com", "icloud.com")
VENDORS = (
    "stacknews", "cloudbill", "tasktrack", "metricly", "shipfast", "devdigest", "payflow", "chatdock",
    "formspark", "eventhub", "learnloop", "hirewise", "travelpro", "officesupply", "securepass",
    "datadose", "growthweekly", "uxletters", "calendarly", "docsign", "crmpulse", "webinarly",
    "expenseit", "cloudstatus", "repohost", "designfeed", "salesbrief", "ticketdesk", "mailmetrics",
    "teamchat",
)  # fmt: skip
TIMEZONES = tuple(timezone(timedelta(hours=hours)) for hours in (-8, -5, 0, 1, 1, 1, 2, 5.5, 9, 10))

CUSTOMER_SUBJECTS = (
    "Renewal for {company} in {month}", "Question about invoice {number}", "Onboarding: next steps",
    "Ticket #{number}: export fails for large reports", "QBR agenda for {month}",
    "Feature request: single sign-on", "Login problems since yesterday", "Pricing for 50 more seats",
    "Contract amendment {number}", "Data processing agreement", "Integration with our CRM",
    "Training session for the new team", "Usage report {month}", "Escalation: API timeouts",
    "Welcome call follow-up", "Security questionnaire", "Über die Verlängerung im {month}",
    "Budget approval for {month}", "Churn risk? Feedback from our side", "Roadmap questions",
)  # fmt: skip
INTERNAL_SUBJECTS = (
    "Team sync notes", "Q{quarter} planning", "Lunch on Friday?", "Hiring plan update",
    "Account handover: {company}", "Customer health dashboard", "Offsite logistics",
    "Forecast review", "1:1 agenda", "Playbook draft v{number}", "Holiday coverage",
    "Renewal pipeline for {month}", "Support rota", "Board deck numbers", "Quick question",
)  # fmt: skip
BULK_SUBJECTS = (
    "Your weekly digest", "Product update: what's new in {month}", "Your receipt #{number}",
    "Invoice {number} is available", "Webinar: customer success at scale", "Security alert",
    "[{vendor}] Build #{number} passed", "Your trial ends in 3 days", "{month} newsletter",
    "Someone commented on your document", "Reminder: event tomorrow", "New sign-in from Chrome",
)  # fmt: skip
PERSON_SUBJECTS = (
    "Intro call?", "Partnership opportunity", "Your talk at the meetup", "Job application",
    "Catching up", "Quick question about your product", "Speaking opportunity", "Referral",
)  # fmt: skip
SPAM_SUBJECTS = (
    "You won a gift card!!!", "Cheap licences, 90% off", "Re: your parcel is waiting",
    "Urgent: verify your account", "Investment opportunity", "Last chance: exclusive offer",
)  # fmt: skip
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December")  # fmt: skip

SUBJECT_WORDS = (
    "the renewal", "our team", "the new dashboard", "the export", "the integration", "your proposal",
    "the contract", "the invoice", "the rollout", "the training", "the API", "the report",
    "the migration", "the pilot", "the budget", "the timeline", "the SSO setup", "the Kündigung",
)  # fmt: skip
VERBS = (
    "looks good for", "needs another review by", "was discussed with", "is blocked by", "depends on",
    "should be ready before", "was approved by", "is still open for", "came up again with",
    "has been escalated to", "will be presented to", "was postponed until after",
)  # fmt: skip
OBJECTS = (
    "the finance department", "our legal team", "the steering committee", "next Tuesday's call",
    "the end of the quarter", "the security review", "the regional managers", "the go-live date",
    "the board meeting", "our IT department", "the procurement process", "the Geschäftsführung",
)  # fmt: skip
OPENERS = (
    "Thanks for the quick reply.", "Following up on our call,", "As promised,", "Just a heads-up:",
    "Good news:", "Sorry for the delay.", "Quick update:", "To summarise,", "One more thing:",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    address: str

    @property
    def first_name(self) -> str:
        return self.name.split(" ", 1)[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Company:
    name: str
    domains: tuple[str, ...]
    people: tuple[Person, ...]
    zone: timezone


@dataclass(frozen=True)
class World:
    """Who is who: what touchline's workspace must know to decide as the generator intends."""

    internal_domain: str
    owner: Person
    colleagues: tuple[Person, ...]
    companies: tuple[Company, ...]
    # People stored as contacts before the sync, with the index of their company; everyone else at a
    # company domain becomes a contact when their first mail is kept.
    known_contacts: tuple[tuple[Person, int], ...]


@dataclass(frozen=True, slots=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    seed: int
    inline: bool = False


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message, small enough to plan twenty thousand; `render()` makes its bytes on demand."""

    index: int
    category: str  # customer | internal | bulk | person | spam
    folder: str
    sender: Person
    to: tuple[Person, ...]
    cc: tuple[Person, ...]
    subject: str
    sent_at: datetime
    received_at: datetime
    message_id: str
    references: tuple[str, ...]
    body_seed: int
    flags: tuple[bytes, ...]
    html: bool
    incoming: bool
    attachments: tuple[Attachment, ...] = ()
    quoted: tuple[tuple[int, str, str], ...] = ()  # (body seed, author, date) of the earlier messages
    list_vendor: str | None = None

    @property
    def kept(self) -> bool:
        """What touchline should decide: customer mail is kept, everything else is ignored."""
        return self.category == "customer"


@dataclass
class Mailbox:
    world: World
    messages: list[MessageSpec] = field(default_factory=list)

    def by_folder(self) -> dict[str, list[MessageSpec]]:
        """Each folder's messages in arrival order, as a real mailbox would have numbered them."""
        folders: dict[str, list[MessageSpec]] = {name: [] for name in FOLDERS}
        for message in sorted(self.messages, key=lambda m: (m.received_at, m.index)):
            folders[message.folder].append(message)
        return folders


def _slug(text: str) -> str:
    table = str.maketrans({"é": "e", "ë": "e", "ö": "o", "ü": "u", "ä": "a", "í": "i", "ø": "o"})
    return "".join(c for c in text.lower().translate(table) if c.isalnum() or c in "-.")


def _person(rng: random.Random, domain: str, used: set[str]) -> Person:
    while True:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        address = f"{_slug(first)}.{_slug(last.replace(' ', '-'))}@{domain}"
        if address not in used:
            used.add(address)
            return Person(f"{first} {last}", address)
        # A clash: try a numbered variant once before drawing new names.
        address = f"{_slug(first)}.{_slug(last.replace(' ', '-'))}{rng.randrange(2, 99)}@{domain}"
        if address not in used:
            used.add(address)
            return Person(f"{first} {last}", address)


def make_world(rng: random.Random) -> World:
    used: set[str] = set()
    owner = Person("Sam Keller", f"sam.keller@{INTERNAL_DOMAIN}")
    used.add(owner.address)
    colleagues = tuple(_person(rng, INTERNAL_DOMAIN, used) for _ in range(14))
    companies: list[Company] = []
    known: list[tuple[Person, int]] = []
    names: set[str] = set()
    while len(companies) < COMPANIES:
        word, kind = rng.choice(COMPANY_WORDS), rng.choice(COMPANY_KINDS)
        stem = f"{word}{rng.choice(('', 'way', 'line', 'point', 'field', 'gate'))}"
        name = f"{stem.capitalize()} {kind.capitalize()}"
        if name in names:
            continue
        names.add(name)
        index = len(companies)
        domains = [f"{stem}-{kind}.{rng.choice(TLDS)}"]
        if rng.random() < 0.1:
            domains.append(f"{stem}{kind}.{rng.choice(('de', 'fr', 'co.uk', 'es'))}")
        people = []
        for _ in range(rng.choice((1, 2, 2, 3, 3, 4, 5, 6))):
            domain = domains[0] if len(domains) == 1 or rng.random() < 0.7 else domains[1]
            if rng.random() < 0.08:
                domain = f"{rng.choice(('eu', 'us', 'mail', 'corp'))}.{domain}"  # a covered subdomain
            person = _person(rng, domain, used)
            people.append(person)
            if rng.random() < 0.2:
                known.append((person, index))
        if rng.random() < 0.05:
            # A customer who writes from a private address: kept only because they are a known contact.
            person = _person(rng, rng.choice(FREE_MAIL), used)
            people.append(person)
            known.append((person, index))
        companies.append(Company(name, tuple(domains), tuple(people), rng.choice(TIMEZONES)))
    return World(INTERNAL_DOMAIN, owner, colleagues, tuple(companies), tuple(known))


def _weighted(rng: random.Random, choices: Sequence[tuple[str, float]]) -> str:
    return rng.choices([name for name, _ in choices], weights=[weight for _, weight in choices])[0]


class _Planner:
    def __init__(self, world: World, rng: random.Random, anchor: datetime) -> None:
        self.world = world
        self.rng = rng
        self.anchor = anchor
        self.start = anchor - timedelta(days=DAYS - 1)
        self.messages: list[MessageSpec] = []
        # Strangers must never share an address with someone the workspace knows.
        self.used = {world.owner.address, *(p.address for p in world.colleagues)}
        self.used.update(p.address for company in world.companies for p in company.people)
        # Big accounts write much more than small ones.
        self.company_weights = [1 / (rank + 1) ** 0.8 for rank in range(len(world.companies))]

    def moment(self) -> datetime:
        """A moment in the window, mostly in working hours on weekdays."""
        rng = self.rng
        day = self.start + timedelta(days=rng.randrange(DAYS - 1))
        if day.weekday() >= 5 and rng.random() < 0.8:
            monday = day + timedelta(days=7 - day.weekday())
            friday = day - timedelta(days=day.weekday() - 4)
            day = monday if monday < self.anchor - timedelta(days=1) else friday
        hour = rng.uniform(7, 19) if rng.random() < 0.85 else rng.uniform(0, 24)
        return min(day + timedelta(hours=hour), self.anchor - timedelta(hours=1))

    def gap(self) -> timedelta:
        return timedelta(seconds=min(rng_lognormal(self.rng, 4 * 3600, 1.3), 6 * 86400))

    def message_id(self, domain: str) -> str:
        return f"<{self.rng.getrandbits(96):024x}.{self.rng.randrange(10**6)}@{domain}>"

    def flags(self, received_at: datetime, incoming: bool, *, replied: bool = False) -> tuple[bytes, ...]:
        flags: list[bytes] = []
        if not incoming or received_at < self.anchor - timedelta(days=2) or self.rng.random() < 0.5:
            flags.append(b"\\Seen")
        if incoming and replied:
            flags.append(b"\\Answered")
        if incoming and self.rng.random() < 0.03:
            flags.append(b"\\Flagged")
        return tuple(flags)

    def attachments(self, probability: float) -> tuple[Attachment, ...]:
        rng = self.rng
        if rng.random() >= probability:
            return ()
        return tuple(random_attachment(rng) for _ in range(rng.choice((1, 1, 1, 2, 3))))

    def add(self, **values: Any) -> MessageSpec:
        spec = MessageSpec(index=len(self.messages), body_seed=self.rng.getrandbits(32), **values)
        self.messages.append(spec)
        return spec

    def thread(
        self,
        category: str,
        budget: int,
        *,
        ours: Sequence[Person],
        theirs: Sequence[Person],
        subject: str,
        incoming_folders: Sequence[tuple[str, float]],
        attachment_probability: float,
        logo: bool,
    ) -> int:
        """A conversation between `ours` (the owner first) and `theirs`; returns how many it added."""
        rng = self.rng
        owner = self.world.owner
        length = min(budget, rng.choices(range(1, 9), weights=(30, 25, 18, 10, 7, 5, 3, 2))[0])
        incoming = rng.random() < 0.6
        moment = self.moment()
        references: list[str] = []
        quoted: list[tuple[int, str, str]] = []
        added = 0
        previous: MessageSpec | None = None
        to: tuple[Person, ...]
        for position in range(length):
            if moment >= self.anchor - timedelta(minutes=5):
                break
            if incoming:
                sender = rng.choice(theirs)
                to = (owner,)
                cc = tuple(p for p in theirs if p != sender and rng.random() < 0.3)
                cc += tuple(p for p in ours[1:] if rng.random() < 0.3)
                folder = _weighted(rng, incoming_folders)
                domain = sender.domain
            else:
                sender = owner
                others = [p for p in theirs if rng.random() < 0.5] or [theirs[0]]
                to = tuple(others)
                cc = tuple(p for p in ours[1:] if rng.random() < 0.3)
                folder = SENT
                domain = INTERNAL_DOMAIN
            received_at = moment + timedelta(seconds=rng.randrange(2, 90)) if incoming else moment
            message_id = self.message_id(domain)
            replied = position + 1 < length
            spec = self.add(
                category=category,
                folder=folder,
                sender=sender,
                to=to,
                cc=cc,
                subject=subject if position == 0 else f"Re: {subject}",
                sent_at=moment.astimezone(_zone_of(sender, self.world)),
                received_at=received_at,
                message_id=message_id,
                references=tuple(references[-12:]),
                flags=self.flags(received_at, incoming, replied=replied),
                html=rng.random() < 0.7,
                incoming=incoming,
                attachments=self.attachments(attachment_probability)
                + ((_logo(rng),) if logo and incoming and rng.random() < 0.4 else ()),
                quoted=tuple(quoted[-4:]),
            )
            added += 1
            previous = spec
            references.append(message_id)
            quoted.append((spec.body_seed, formataddr((sender.name, sender.address)), _date(spec.sent_at)))
            moment += self.gap()
            if rng.random() < 0.8:
                incoming = not incoming
        if previous is not None and added < budget and rng.random() < 0.03:
            # A reply the owner started and never sent.
            moment = min(moment, self.anchor - timedelta(minutes=1))
            self.add(
                category=category,
                folder=DRAFTS,
                sender=owner,
                to=(previous.sender,) if previous.sender != owner else previous.to,
                cc=(),
                subject=f"Re: {subject}",
                sent_at=moment.astimezone(_zone_of(owner, self.world)),
                received_at=moment,
                message_id=self.message_id(INTERNAL_DOMAIN),
                references=tuple(references[-12:]),
                flags=(b"\\Draft", b"\\Seen"),
                html=True,
                incoming=False,
                quoted=tuple(quoted[-4:]),
            )
            added += 1
        return added

    def customer_thread(self, budget: int) -> int:
        rng, world = self.rng, self.world
        index = rng.choices(range(len(world.companies)), weights=self.company_weights)[0]
        company = world.companies[index]
        theirs = rng.sample(company.people, min(len(company.people), rng.choice((1, 1, 1, 2, 2, 3))))
        ours = [world.owner, *rng.sample(world.colleagues, rng.choice((0, 0, 1, 1, 2)))]
        subject = _fill(rng, rng.choice(CUSTOMER_SUBJECTS), company=company.name)
        return self.thread(
            "customer",
            budget,
            ours=ours,
            theirs=theirs,
            subject=subject,
            incoming_folders=((INBOX, 70), ("Customers", 12), ("Support", 10), ("Renewals", 8)),
            attachment_probability=0.12,
            logo=True,
        )

    def internal_thread(self, budget: int) -> int:
        rng, world = self.rng, self.world
        theirs = rng.sample(world.colleagues, rng.choice((1, 1, 2, 3, 4)))
        company = rng.choice(world.companies).name
        subject = _fill(rng, rng.choice(INTERNAL_SUBJECTS), company=company)
        return self.thread(
            "internal",
            budget,
            ours=[world.owner],
            theirs=theirs,
            subject=subject,
            incoming_folders=((INBOX, 75), ("Projects", 25)),
            attachment_probability=0.15,
            logo=False,
        )

    def person_thread(self, budget: int) -> int:
        rng = self.rng
        domain = (
            rng.choice(FREE_MAIL)
            if rng.random() < 0.7
            else f"{rng.choice(COMPANY_WORDS)}-{rng.choice(('consulting', 'ventures', 'studio'))}.net"
        )
        stranger = _person(rng, domain, self.used)
        subject = _fill(rng, rng.choice(PERSON_SUBJECTS))
        return self.thread(
            "person",
            min(budget, 2),
            ours=[self.world.owner],
            theirs=[stranger],
            subject=subject,
            incoming_folders=((INBOX, 80), (TRASH, 20)),
            attachment_probability=0.05,
            logo=False,
        )

    def single(self, category: str) -> None:
        rng, owner = self.rng, self.world.owner
        if category == "bulk":
            vendor = rng.choice(VENDORS)
            domain = f"{'mail.' if rng.random() < 0.5 else ''}{vendor}.com"
            sender = Person(vendor.capitalize(), f"{rng.choice(('news', 'noreply', 'billing'))}@{domain}")
            subject = _fill(rng, rng.choice(BULK_SUBJECTS), vendor=vendor)
            folder = _weighted(rng, ((INBOX, 52), ("Newsletters", 30), (TRASH, 18)))
            attachments = (
                (random_attachment(rng, "pdf"),) if "eceipt" in subject or "nvoice" in subject else ()
            )
        else:
            vendor = None
            domain = f"{rng.choice(COMPANY_WORDS)}{rng.randrange(100, 999)}-offers.biz"
            sender = Person("Special Offers", f"promo@{domain}")
            subject = rng.choice(SPAM_SUBJECTS)
            folder = JUNK
            attachments = ()
        received_at = self.moment()
        self.add(
            category=category,
            folder=folder,
            sender=sender,
            to=(owner,),
            cc=(),
            subject=subject,
            sent_at=(received_at - timedelta(seconds=rng.randrange(5, 300))).astimezone(UTC),
            received_at=received_at,
            message_id=self.message_id(domain),
            references=(),
            flags=self.flags(received_at, True),
            html=True,
            incoming=True,
            attachments=attachments,
            list_vendor=vendor,
        )


def rng_lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0, sigma))


def random_attachment(rng: random.Random, kind: str | None = None) -> Attachment:
    """Sizes follow what mail carries: PDFs around 150 kB, photos around 250 kB, and a long tail."""
    kind = (
        kind
        or rng.choices(("pdf", "jpg", "png", "docx", "xlsx", "csv", "ics"), (30, 20, 10, 15, 12, 8, 5))[0]
    )
    median, cap, content_type = {
        "pdf": (150_000, 6_000_000, "application/pdf"),
        "jpg": (250_000, 4_000_000, "image/jpeg"),
        "png": (90_000, 2_000_000, "image/png"),
        "docx": (
            60_000,
            3_000_000,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        "xlsx": (45_000, 3_000_000, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        "csv": (8_000, 500_000, "text/csv"),
        "ics": (2_500, 10_000, "text/calendar"),
    }[kind]
    size = max(300, min(cap, int(rng_lognormal(rng, median, 1.0))))
    stem = rng.choice(("report", "invoice", "contract", "notes", "scan", "export", "agenda", "Angebot"))
    return Attachment(f"{stem}-{rng.randrange(1000, 9999)}.{kind}", content_type, size, rng.getrandbits(32))


def _logo(rng: random.Random) -> Attachment:
    return Attachment("logo.png", "image/png", rng.randrange(4_000, 14_000), rng.getrandbits(32), inline=True)


def _fill(rng: random.Random, template: str, **values: str) -> str:
    return template.format(
        company=values.get("company", ""),
        vendor=values.get("vendor", ""),
        month=rng.choice(MONTHS),
        number=rng.randrange(1000, 99999),
        quarter=rng.randrange(1, 5),
    )


def _zone_of(person: Person, world: World) -> timezone:
    if person.domain.endswith(world.internal_domain):
        return timezone(timedelta(hours=1))
    digest = hashlib.blake2s(person.domain.encode(), digest_size=1).digest()[0]
    return TIMEZONES[digest % len(TIMEZONES)]


def _date(moment: datetime) -> str:
    return format_datetime(moment)


def anchor_for(now: datetime | None = None) -> datetime:
    """The start of the current UTC day: the newest possible date of a generated message."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def plan_mailbox(count: int, *, seed: int = SEED, anchor: datetime | None = None) -> Mailbox:
    """`count` messages laid out deterministically over the DAYS days before `anchor`."""
    rng = random.Random(seed)
    world = make_world(rng)
    planner = _Planner(world, rng, anchor or anchor_for())
    targets = {category: round(share * count) for category, share in CATEGORY_SHARES.items()}
    targets["spam"] = count - sum(v for k, v in targets.items() if k != "spam")
    made = dict.fromkeys(targets, 0)
    threads = {
        "customer": planner.customer_thread,
        "internal": planner.internal_thread,
        "person": planner.person_thread,
    }
    # Interleave the kinds so that no kind owns a stretch of the random stream.
    while made != targets:
        for category, target in targets.items():
            budget = target - made[category]
            if budget <= 0:
                continue
            if category in threads:
                made[category] += threads[category](budget)
            else:
                planner.single(category)
                made[category] += 1
    return Mailbox(world, planner.messages)


# --- rendering ---------------------------------------------------------------------------------------

_SENTENCES: list[str] = []


def _sentences() -> list[str]:
    if not _SENTENCES:
        rng = random.Random(SEED + 1)
        for _ in range(4000):
            opener = f"{rng.choice(OPENERS)} " if rng.random() < 0.25 else ""
            sentence = f"{rng.choice(SUBJECT_WORDS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            if rng.random() < 0.3:
                sentence += f", and {rng.choice(SUBJECT_WORDS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
            text = f"{opener}{sentence}."
            _SENTENCES.append(text[0].upper() + text[1:])
    return _SENTENCES


def body_text(seed: int, author: Person | None = None, *, long: bool = False) -> str:
    rng = random.Random(seed)
    pool = _sentences()
    paragraphs = [
        " ".join(rng.choices(pool, k=rng.randrange(2, 6)))
        for _ in range(rng.randrange(3, 9) if long else rng.randrange(1, 5))
    ]
    greeting = rng.choice(("Hi", "Hello", "Dear", "Hallo", "Good morning"))
    closing = rng.choice(("Best regards", "Thanks", "Cheers", "Kind regards", "Viele Grüße"))
    signature = f"{closing},\n{author.name}" if author else closing
    if author and not author.domain.endswith(INTERNAL_DOMAIN):
        signature += f"\n{rng.choice(('Head of Operations', 'IT Manager', 'CFO', 'Procurement'))}"
        signature += (
            f"\nPhone +{rng.randrange(1, 99)} {rng.randrange(100, 999)} {rng.randrange(10**5, 10**7)}"
        )
    return f"{greeting},\n\n" + "\n\n".join(_wrap(p) for p in paragraphs) + f"\n\n{signature}\n"


def _wrap(paragraph: str, width: int = 74) -> str:
    lines, line = [], ""
    for word in paragraph.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    return "\n".join(lines)


def _html(text: str, quoted_html: str = "") -> str:
    paragraphs = "".join(
        f'<p style="margin:0 0 12px 0">{p.replace(chr(10), "<br>")}</p>\n' for p in text.split("\n\n")
    )
    return (
        '<html><head><meta http-equiv="Content-Type" content="text/html; charset=utf-8">\n'
        "<style>body{font-family:Calibri,Arial,sans-serif;font-size:11pt;color:#1f1f1f}"
        "p{margin:0}blockquote{border-left:2px solid #ccc;padding-left:8px;margin-left:4px}</style>\n"
        f'</head><body><div dir="ltr">\n{paragraphs}{quoted_html}</div></body></html>\n'
    )


def _newsletter_html(rng: random.Random, subject: str) -> str:
    pool = _sentences()
    blocks = []
    for index in range(rng.randrange(4, 14)):
        text = " ".join(rng.choices(pool, k=rng.randrange(2, 5)))
        blocks.append(
            '<tr><td style="padding:24px 32px;font-family:Helvetica,Arial,sans-serif;font-size:15px;'
            f'line-height:22px;color:#333333"><h2 style="margin:0 0 8px 0;font-size:20px">Story {index + 1}'
            f'</h2><p style="margin:0">{text}</p><a href="https://click.example.net/t/{rng.getrandbits(64):x}'
            f'?u={rng.getrandbits(64):x}" style="color:#0b5fff;text-decoration:none">Read more</a>'
            f'<img src="https://img.example.net/{rng.getrandbits(48):x}.png" width="536" alt=""></td></tr>\n'
        )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{subject}</title><style>@media only screen and (max-width:600px){{.wrap{{width:100%"
        '!important}}}}</style></head><body style="margin:0;background:#f4f4f4">\n'
        '<table role="presentation" class="wrap" width="600" align="center" cellpadding="0" '
        'cellspacing="0" style="background:#ffffff">\n' + "".join(blocks) + "</table>\n"
        f'<img src="https://open.example.net/o/{rng.getrandbits(64):x}.gif" width="1" height="1">'
        "</body></html>\n"
    )


def _qp(text: str) -> bytes:
    return quopri.encodestring(text.encode("utf-8")).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _text_part(text: str, subtype: str = "plain") -> bytes:
    head = f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n'
    return head.encode() + b"\r\n" + _qp(text)


_MAGIC = {
    "application/pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n",
    "image/png": b"\x89PNG\r\n\x1a\n",
    "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
}


def _attachment_part(attachment: Attachment) -> bytes:
    rng = random.Random(attachment.seed)
    if attachment.content_type.startswith("text/"):
        line = "Date,Account,Seats,Amount\n" if attachment.content_type == "text/csv" else "BEGIN:VEVENT\n"
        payload = (line * (attachment.size // len(line) + 1)).encode()[: attachment.size]
    else:
        magic = _MAGIC.get(attachment.content_type, b"PK\x03\x04")
        payload = magic + rng.randbytes(attachment.size - len(magic))
    encoded = base64.encodebytes(payload).replace(b"\n", b"\r\n")
    disposition = "inline" if attachment.inline else "attachment"
    header = (
        f'Content-Type: {attachment.content_type}; name="{attachment.filename}"\r\n'
        f'Content-Disposition: {disposition}; filename="{attachment.filename}"; size={attachment.size}\r\n'
        "Content-Transfer-Encoding: base64\r\n"
    )
    if attachment.inline:
        header += f"Content-ID: <{attachment.seed:x}@logo>\r\n"
    return header.encode() + b"\r\n" + encoded


def _multipart(subtype: str, boundary: str, parts: Iterable[bytes]) -> bytes:
    out = [f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n\r\n'.encode()]
    for part in parts:
        out.append(f"--{boundary}\r\n".encode())
        out.append(part)
        if not part.endswith(b"\r\n"):
            out.append(b"\r\n")
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


def _address_list(people: Sequence[Person]) -> str:
    return ", ".join(formataddr((person.name, person.address)) for person in people)


def _header(name: str, value: str) -> str:
    if not value.isascii():
        value = Header(value, "utf-8").encode()
    return f"{name}: {value}\r\n"


def _folded(name: str, value: str, width: int = 76) -> str:
    chunks = [value[i : i + width] for i in range(0, len(value), width)]
    return f"{name}: " + "\r\n\t".join(chunks) + "\r\n"


def _transport_headers(spec: MessageSpec, rng: random.Random, owner: str) -> str:
    """What arrives with mail from outside: the hops, the signature and the receiving server's verdict."""
    domain = spec.sender.domain
    received = _date(spec.received_at.astimezone(timezone(timedelta(hours=1))))
    sent = _date(spec.sent_at)
    ip = f"{rng.randrange(11, 223)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    signed = "From:To:Cc:Subject:Date:Message-ID:In-Reply-To:References:MIME-Version:Content-Type"
    body_hash = base64.b64encode(rng.randbytes(32)).decode()
    signature = base64.b64encode(rng.randbytes(256)).decode()
    headers = [
        f"Return-Path: <{spec.sender.address}>\r\n",
        f"Delivered-To: {owner}\r\n",
        f"Received: from mx{rng.randrange(1, 4)}.{domain} (mx.{domain} [{ip}])\r\n\tby mail.{INTERNAL_DOMAIN}"
        f" (Postfix) with ESMTPS id {rng.getrandbits(40):X}\r\n\tfor <{owner}>; {received}\r\n",
        f"Received: from smtp.{domain} (smtp.{domain} [10.{rng.randrange(256)}.{rng.randrange(256)}.3])"
        f"\r\n\tby mx.{domain} with ESMTPSA id {rng.getrandbits(48):x}\r\n\t(version=TLS1_3"
        f" cipher=TLS_AES_256_GCM_SHA384 bits=256/256); {sent}\r\n",
        f"Authentication-Results: mail.{INTERNAL_DOMAIN};\r\n\tdkim=pass header.d={domain} header.s=s1"
        f" header.b={signature[:8]};\r\n\tspf=pass (mail.{INTERNAL_DOMAIN}: domain of {spec.sender.address}"
        f" designates {ip} as permitted sender) smtp.mailfrom={spec.sender.address};\r\n\tdmarc=pass"
        f" (p=QUARANTINE sp=QUARANTINE dis=NONE) header.from={domain}\r\n",
        _folded(
            "DKIM-Signature",
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s=s1; "
            f"t={int(spec.sent_at.timestamp())}; h={signed}; bh={body_hash}; b={signature}",
        ),
    ]
    if not domain.endswith(INTERNAL_DOMAIN) and rng.random() < 0.5:
        headers.append(
            _folded(
                "ARC-Seal",
                f"i=1; a=rsa-sha256; t={int(spec.sent_at.timestamp())}; cv=none; d={domain}; s=arc; "
                f"b={base64.b64encode(rng.randbytes(256)).decode()}",
            )
        )
        headers.append(f"X-Spam-Score: {rng.uniform(-3, 2):.1f}\r\n")
    return "".join(headers)


def render(spec: MessageSpec, owner: str = f"sam.keller@{INTERNAL_DOMAIN}") -> bytes:
    """The message's bytes, CRLF line ends, as an IMAP APPEND sends them; the same spec, the same bytes."""
    rng = random.Random(spec.body_seed)
    headers = _transport_headers(spec, rng, owner) if spec.incoming and spec.category != "spam" else ""
    if spec.category == "spam":
        headers += (
            f"Received: from [{rng.randrange(1, 223)}.{rng.randrange(256)}.0.1] by mail.{INTERNAL_DOMAIN}"
        )
        headers += (
            f"; {_date(spec.received_at)}\r\nX-Spam-Flag: YES\r\nX-Spam-Score: 9.{rng.randrange(10)}\r\n"
        )
    headers += _header("From", formataddr((spec.sender.name, spec.sender.address)))
    headers += _header("To", _address_list(spec.to))
    if spec.cc:
        headers += _header("Cc", _address_list(spec.cc))
    headers += _header("Subject", spec.subject)
    headers += f"Date: {_date(spec.sent_at)}\r\nMessage-ID: {spec.message_id}\r\n"
    if spec.references:
        headers += f"In-Reply-To: {spec.references[-1]}\r\n"
        headers += "References: " + "\r\n ".join(spec.references) + "\r\n"
    if spec.list_vendor is not None:
        vendor = spec.list_vendor
        headers += (
            f"List-Unsubscribe: <https://{vendor}.com/unsubscribe/{rng.getrandbits(80):x}>,"
            f" <mailto:unsubscribe@{vendor}.com?subject={rng.getrandbits(40):x}>\r\n"
            "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
            f"List-Id: {vendor} updates <updates.{vendor}.com>\r\n"
            f"Feedback-ID: {rng.randrange(10**6)}:{vendor}:campaign\r\n"
        )
        if rng.random() < 0.5:
            headers += "Precedence: bulk\r\n"
    mailer = rng.choice(
        ("Microsoft Outlook 16.0", "Apple Mail (2.3774)", "Mozilla Thunderbird 128.3.1", "Gmail", "")
    )
    if mailer and spec.category in {"customer", "internal", "person"}:
        headers += f"X-Mailer: {mailer}\r\n"
    headers += "MIME-Version: 1.0\r\n"

    if spec.category in {"bulk", "spam"}:
        text = body_text(spec.body_seed, long=spec.category == "bulk")
        html = _newsletter_html(rng, spec.subject) if spec.category == "bulk" else _html(text)
    else:
        text = body_text(spec.body_seed, spec.sender, long=rng.random() < 0.3)
        quoted_text, quoted_html = _quotes(spec)
        html = _html(text, quoted_html) if spec.html else ""
        text += quoted_text
    boundary = f"=_tl{spec.index:06d}_{spec.body_seed:08x}"
    body = (
        _multipart("alternative", f"alt{boundary}", (_text_part(text), _text_part(html, "html")))
        if html
        else _text_part(text)
    )
    inline = [a for a in spec.attachments if a.inline]
    if inline:
        body = _multipart("related", f"rel{boundary}", (body, *map(_attachment_part, inline)))
    files = [a for a in spec.attachments if not a.inline]
    if files:
        body = _multipart("mixed", f"mix{boundary}", (body, *map(_attachment_part, files)))
    return headers.encode("ascii") + body


def _quotes(spec: MessageSpec) -> tuple[str, str]:
    """The earlier messages of the thread, quoted the way mail clients do, newest first."""
    text, html = "", ""
    depth = ""
    for seed, author, date in reversed(spec.quoted):
        depth += "> "
        quoted = body_text(seed)
        text += f"\nOn {date}, {author} wrote:\n" + "\n".join(
            f"{depth}{line}" for line in quoted.splitlines()
        )
        html += f"<blockquote><p>On {date}, {author.replace('<', '&lt;')} wrote:</p>"
        html += "".join(f"<p>{p}</p>" for p in quoted.split("\n\n"))
    html += "</blockquote>" * len(spec.quoted)
    return text, html


def summary(mailbox: Mailbox, sample_every: int = 1) -> dict[str, object]:
    """Counts per category and folder, and sizes (rendering every `sample_every`-th message)."""
    categories = collections.Counter(m.category for m in mailbox.messages)
    folders = collections.Counter(m.folder for m in mailbox.messages)
    sizes = [len(render(m)) for m in mailbox.messages[::sample_every]]
    with_attachments = sum(1 for m in mailbox.messages if any(not a.inline for a in m.attachments))
    threads = sum(1 for m in mailbox.messages if not m.references)
    return {
        "messages": len(mailbox.messages),
        "categories": dict(categories),
        "folders": dict(folders),
        "threads": threads,
        "with_attachments": with_attachments,
        "mean_bytes": int(sum(sizes) / max(1, len(sizes))),
        "estimated_total_mb": round(sum(sizes) * sample_every / 1e6, 1),
        "companies": len(mailbox.world.companies),
        "known_contacts": len(mailbox.world.known_contacts),
        "oldest": min(m.received_at for m in mailbox.messages).isoformat(),
        "newest": max(m.received_at for m in mailbox.messages).isoformat(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--sample-every", type=int, default=1, help="render only every n-th for sizes")
    args = parser.parse_args(argv)
    mailbox = plan_mailbox(args.messages)
    for key, value in summary(mailbox, args.sample_every).items():
        print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
