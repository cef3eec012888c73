"""Templates: merge fields, the sandbox, previews that name every missing field, all-or-nothing renders."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from touchline.outbound.compose.merge import CompanyFields, EnduserFields, MergeContext, SenderFields
from touchline.outbound.compose.plaintext import text_from_html
from touchline.outbound.compose.templates import (
    MAX_BODY_CHARS,
    MAX_LOOP_ITERATIONS,
    MAX_LOOP_WORK,
    EmailTemplate,
    RenderedEmail,
    RenderFailure,
    TemplateInvalidError,
    compile_template,
    preview,
    render,
)

SENDER = SenderFields(name="Sam Lee", email="sam@touchline.example")


def context(**enduser: object) -> MergeContext:
    fields: dict[str, object] = {"email": "jane@acme.example", "first_name": "Jane", **enduser}
    return MergeContext(
        enduser=EnduserFields(**fields),  # type: ignore[arg-type]
        sender=SENDER,
        company=CompanyFields(
            name="Acme & Co",
            custom={
                "renewal_date": date(2027, 1, 31),
                "arr": Decimal("12000.50"),
                "tier": "gold",
                "seats": 40,
            },
        ),
    )


def rendered(template: EmailTemplate, merge: MergeContext | None = None) -> RenderedEmail:
    outcome = render(compile_template(template), merge or context())
    assert isinstance(outcome, RenderedEmail), outcome
    return outcome


def test_merge_fields_of_enduser_company_and_sender_fill_every_part() -> None:
    email = rendered(
        EmailTemplate(
            subject="{{ company.name }} renews on {{ company.custom.renewal_date.strftime('%d %B %Y') }}",
            html="<p>Hi {{ enduser.first_name }}, {{ company.custom.seats }} seats, "
            "{{ company.custom.arr }}</p>",
            text="Hi {{ enduser.first_name }}\n-- {{ sender.name }}",
            track_opens=True,
            track_clicks=False,
        )
    )
    assert email.subject == "Acme & Co renews on 31 January 2027"
    assert email.html == "<p>Hi Jane, 40 seats, 12000.50</p>"
    assert email.text == "Hi Jane\n-- Sam Lee"
    assert (email.track_opens, email.track_clicks) == (True, False)


def test_html_escapes_merge_values_but_subject_and_text_do_not() -> None:
    hostile = context(first_name="<script>alert(1)</script>")
    email = rendered(
        EmailTemplate(
            subject="{{ enduser.first_name }}",
            html="<b>{{ enduser.first_name }}</b>",
            text="{{ enduser.first_name }}",
        ),
        hostile,
    )
    assert email.html == "<b>&lt;script&gt;alert(1)&lt;/script&gt;</b>"
    assert email.subject == email.text == "<script>alert(1)</script>"


@pytest.mark.parametrize(
    "html",
    [
        "{{ enduser.first_name | safe }}",
        "{% autoescape false %}{{ enduser.first_name }}{% endautoescape %}",
    ],
)
def test_escaping_cannot_be_switched_off(html: str) -> None:
    with pytest.raises(TemplateInvalidError):
        compile_template(EmailTemplate(subject="s", html=html))


def test_default_filter_allows_an_empty_field() -> None:
    email = rendered(EmailTemplate(subject="Hi {{ enduser.last_name | default('there') }}", text="x"))
    assert email.subject == "Hi there"


def test_text_part_is_derived_from_the_html_when_absent() -> None:
    email = rendered(
        EmailTemplate(
            subject="s",
            html=(
                "<html><head><style>p{color:red}</style></head><body>"
                "<p>Hi {{ enduser.first_name }},</p>"
                "<p>See <a href='https://acme.example/r'>the report</a>.</p>"
                "<ul><li>one</li><li>two</li></ul><blockquote>quoted</blockquote><script>x()</script></body></html>"
            ),
        )
    )
    assert email.text == "Hi Jane,\n\nSee the report (https://acme.example/r).\n\n- one\n- two\n\n> quoted"


def test_plain_text_keeps_line_breaks_and_preformatted_text() -> None:
    assert text_from_html("a<br>b<pre>  x\n  y</pre>c &amp; d") == "a\nb\n\n  x\n  y\n\nc & d"
    assert text_from_html("<a href='mailto:x@acme.example'>x@acme.example</a>") == "x@acme.example"


def test_plain_text_of_deeply_nested_markup_is_linear() -> None:
    markup = "<div>" * 20_000 + "deep" + "</div>" * 20_000
    assert text_from_html(markup) == "deep"


def test_preview_names_every_missing_field_in_every_part() -> None:
    template = EmailTemplate(
        subject="Hi {{ enduser.last_name }}",
        html=(
            "<p>{{ enduser.title.upper() }} {{ company.custom.csm }} {{ company.custom.tier }}</p>"
            "{% if enduser.phone == '1' %}x{% endif %}{{ company.custom.nps | round }} {{ sender.title }}"
        ),
    )
    result = preview(template, context())
    assert result.rendered is None
    assert result.missing_fields == (
        "enduser.last_name",
        "enduser.title",
        "company.custom.csm",
        "enduser.phone",
        "company.custom.nps",
        "sender.title",
    )
    parts = {problem.field: problem.part for problem in result.problems}
    assert parts["enduser.last_name"] == "subject"
    assert parts["sender.title"] == "html"
    messages = " ".join(problem.message for problem in result.problems)
    assert "enduser.last_name has no value for jane@acme.example" in messages
    assert "company.custom.csm has no value for Acme & Co" in messages


def test_preview_says_when_the_enduser_has_no_company() -> None:
    lone = MergeContext(EnduserFields("solo@free.example", first_name="Solo"), SENDER)
    result = preview(EmailTemplate(subject="{{ company.name }}", text="x"), lone)
    assert result.missing_fields == ("company.name",)
    assert "belongs to no company" in result.problems[0].message


def test_preview_of_a_good_template_is_the_rendered_email() -> None:
    result = preview(EmailTemplate(subject="Hi {{ enduser.first_name }}", text="x"), context())
    assert result.problems == ()
    assert result.rendered is not None
    assert result.rendered.subject == "Hi Jane"


def test_a_recipient_missing_a_field_gets_no_email_at_all() -> None:
    compiled = compile_template(EmailTemplate(subject="Hello", html="<p>{{ enduser.first_name }}</p>"))
    assert isinstance(render(compiled, context()), RenderedEmail)
    failure = render(compiled, context(first_name=None))
    assert isinstance(failure, RenderFailure)
    assert failure.missing_fields == ("enduser.first_name",)
    assert "has no value" in str(failure)


def test_empty_text_counts_as_missing() -> None:
    failure = render(
        compile_template(EmailTemplate(subject="{{ enduser.first_name }}", text="x")), context(first_name="")
    )
    assert isinstance(failure, RenderFailure)
    assert failure.missing_fields == ("enduser.first_name",)


def test_syntax_errors_carry_their_line() -> None:
    result = preview(
        EmailTemplate(subject="ok", html="<p>one</p>\n<p>{{ enduser.first_name }</p>"), context()
    )
    assert [(problem.part, problem.kind, problem.line) for problem in result.problems] == [
        ("html", "syntax", 2)
    ]


def test_unknown_fields_and_names_are_template_errors_even_in_branches_not_taken() -> None:
    template = EmailTemplate(
        subject="s", text="{% if false %}\n{{ enduser.frist_name }}\n{{ customer.name }}{% endif %}"
    )
    with pytest.raises(TemplateInvalidError) as raised:
        compile_template(template)
    problems = {(problem.field, problem.line) for problem in raised.value.problems}
    assert problems == {("enduser.frist_name", 2), ("customer", 3)}
    assert "enduser.first_name" in str(raised.value)  # the message lists the fields that exist


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("{% set x = 1 %}", "set"),
        ("{% macro m() %}{% endmacro %}", "macros"),
        ("{% include 'other' %}", "include"),
        ("{% extends 'base' %}", "extends"),
        ("{% with a = 1 %}{% endwith %}", "with"),
        ("{% for c in enduser.email %}{% endfor %}", "range"),
        ("{{ enduser.email | center(100) }}", "center"),
        ("{{ lipsum(1000) }}", "lipsum"),
        ("{{ cycler }}", "cycler"),
    ],
)
def test_constructs_outside_the_allowed_set_are_refused_before_any_render(source: str, words: str) -> None:
    with pytest.raises(TemplateInvalidError) as raised:
        compile_template(EmailTemplate(subject="s", html=source))
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{{ ''.__class__ }}", "access to attribute '__class__' of 'str' object is unsafe"),
        ("{{ enduser.email.__class__.__mro__ }}", "'__class__' of 'str' object is unsafe"),
        ("{{ enduser._values }}", "'enduser._values' is not a field"),
        ("{{ company.custom.renewal_date.replace(year=1) }}", "'replace' of 'date' object is unsafe"),
        ("{{ '{:>99999999}'.format(1) }}", "'format' of 'str' object is unsafe"),
        ("{{ '%99999999s' % 1 }}", "'%' formatting of text is not available"),
        ("{{ enduser.email * 10000000 }}", "this repetition would make a text larger"),
        ("{{ 7 ** 99999999 }}", "this power is too large"),
        ("{{ (2 ** 49999) * (2 ** 49999) * 8 }}", "this product is too large"),
        (
            "{{ enduser.email | replace('', 'x' * 1000) | replace('', 'y' * 1000) }}",
            "this replace would make",
        ),
        ("{{ range(4000) | join(range(4000) | join('x' * 200)) }}", "this join would make a text larger"),
        ("{% for i in range(10000) %}{{ ('x' * 999999) | length }}{% endfor %}", "builds more text than"),
        ("{% for i in range(10 ** 30) %}{% endfor %}", "the loops of this template run more than"),
        (
            "{% for i in range(0 - 10 ** 30, 10 ** 30, 10) %}{% endfor %}",
            "the loops of this template run more than",
        ),
        (
            "{% for i in range(1000) %}{{ ('x' * 99999).upper().lower() | length }}{% endfor %}",
            "builds more text than",
        ),
    ],
)
def test_sandbox_refusals_are_clear_errors(source: str, reason: str) -> None:
    result = preview(EmailTemplate(subject="s", text=source), context())
    assert result.rendered is None
    assert [problem.kind for problem in result.problems] in (["unsafe"], ["unknown-field"])
    assert reason in result.problems[0].message


def test_loops_share_one_iteration_budget() -> None:
    inside = int(MAX_LOOP_ITERATIONS**0.5)
    fits = f"{{% for i in range({inside}) %}}{{% for j in range({inside - 1}) %}}{{% endfor %}}{{% endfor %}}"
    assert rendered(EmailTemplate(subject="s", text=fits))
    nested = (
        "{% for i in range(100) %}{% for j in range(100) %}{% for k in range(100) %}" + "{% endfor %}" * 3
    )
    result = preview(EmailTemplate(subject="s", text=nested), context())
    assert [problem.kind for problem in result.problems] == ["unsafe"]
    assert str(MAX_LOOP_ITERATIONS) in result.problems[0].message


def test_longer_templates_get_fewer_loop_iterations() -> None:
    body = "{{ company.custom.tier }}" * 400
    assert rendered(EmailTemplate(subject="s", text="{% for i in range(150) %}" + body + "{% endfor %}"))
    result = preview(
        EmailTemplate(subject="s", text="{% for i in range(300) %}" + body + "{% endfor %}"), context()
    )
    assert [problem.kind for problem in result.problems] == ["unsafe"]
    assert "longer templates" in result.problems[0].message


@pytest.mark.parametrize(
    "source", ["{{ " + "(" * 5000 + "1" + ")" * 5000 + " }}", "{{ 1" + " | abs" * 20000 + " }}"]
)
def test_deeply_nested_templates_are_refused(source: str) -> None:
    with pytest.raises(TemplateInvalidError, match="nested too deeply"):
        compile_template(EmailTemplate(subject="s", text=source))


def test_rendered_output_is_capped() -> None:
    big = "{% for i in range(5000) %}" + "x" * (MAX_BODY_CHARS // 4000) + "{% endfor %}"
    result = preview(EmailTemplate(subject="s", html=big), context())
    assert [problem.kind for problem in result.problems] == ["too-large"]
    long_subject = preview(
        EmailTemplate(subject="{% for i in range(200) %}subject {% endfor %}", text="x"), context()
    )
    assert [problem.part for problem in long_subject.problems] == ["subject"]


@pytest.mark.parametrize("brk", ["\r\n", "\n", "\u2028", "\x85", "\x00"])
def test_a_line_break_from_a_merge_field_never_reaches_the_subject(brk: str) -> None:
    failure = render(
        compile_template(EmailTemplate(subject="Hi {{ enduser.first_name }}", text="x")),
        context(first_name=f"Jane{brk}Bcc: victim@elsewhere.example"),
    )
    assert isinstance(failure, RenderFailure)
    assert failure.problems[0].kind == "unsafe"
    assert "line break" in failure.problems[0].message


def test_a_subject_template_is_one_line() -> None:
    with pytest.raises(TemplateInvalidError, match="single line"):
        compile_template(EmailTemplate(subject="Hello\n", text="x"))


def test_an_email_needs_a_body() -> None:
    with pytest.raises(TemplateInvalidError, match="HTML or a text part"):
        compile_template(EmailTemplate(subject="s"))


values = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.integers(),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.floats(),
    st.dates(),
    st.booleans(),
)
fragments = st.sampled_from(
    [
        "{{ ",
        " }}",
        "{% ",
        " %}",
        "enduser.first_name",
        "enduser.email",
        "company.custom.tier",
        "company.custom.x",
        "sender.name",
        "| default('a')",
        "| upper",
        "| round",
        "| int",
        "| join(',')",
        "for i in range(3)",
        "endfor",
        "if ",
        "else",
        "endif",
        " + 1",
        " * 3",
        " ~ ",
        " == ",
        "'",
        "(",
        ")",
        ".",
        "[",
        "]",
        "x",
        "<p>",
        "\n",
        "loop.index",
        ".strftime('%Y')",
        ".upper()",
        ".__class__",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(fragments, max_size=14),
    first_name=values,
    tier=values,
    custom_x=values,
)
def test_rendering_never_raises_outside_the_declared_errors(
    parts: list[str], first_name: object, tier: object, custom_x: object
) -> None:
    source = "".join(parts)
    merge = MergeContext(
        enduser=EnduserFields(
            "e@acme.example", first_name=first_name if isinstance(first_name, str) else None
        ),
        sender=SENDER,
        company=CompanyFields("Acme", custom={"tier": tier, "x": custom_x}),  # type: ignore[dict-item]
    )
    template = EmailTemplate(subject="s", html=source)
    try:
        compiled = compile_template(template)
    except TemplateInvalidError as error:
        problems = error.problems
        assert problems
        return
    outcome = render(compiled, merge)
    assert isinstance(outcome, RenderedEmail | RenderFailure)
    if isinstance(outcome, RenderFailure):
        assert outcome.problems
    shown = preview(template, merge)
    assert (shown.rendered is None) == bool(shown.problems)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_renders_as_escaped_html_and_unchanged_text(name: str) -> None:
    merge = context(first_name=name or None)
    outcome = render(
        compile_template(
            EmailTemplate(
                subject="s", html="<b>{{ enduser.first_name }}</b>", text="{{ enduser.first_name }}"
            )
        ),
        merge,
    )
    if not name:
        assert isinstance(outcome, RenderFailure)
        return
    assert isinstance(outcome, RenderedEmail)
    assert outcome.text == name
    assert outcome.html is not None
    assert "<" not in outcome.html[3:-4]
    assert ">" not in outcome.html[3:-4]


def _heaviest_loop(body: str) -> str:
    """`body` repeated inside the longest loop a template of that size may run."""
    iterations = min(MAX_LOOP_ITERATIONS, MAX_LOOP_WORK // (len(body) + 40))
    return f"{{% for i in range({iterations}) %}}{body}{{% endfor %}}"


ADVERSARIAL = {
    "method calls in the longest loop": _heaviest_loop("{{ enduser.email.upper() | length }}" * 50),
    "merge fields in the longest loop": _heaviest_loop("{{ company.custom.tier }}" * 50),
    "url encoding in the longest loop": _heaviest_loop("{{ enduser.email | urlencode | urlencode }}" * 20),
    "the largest template, 100 missing fields": "{{ enduser.email.upper() | length }}" * 5000
    + "".join(f"{{{{ company.custom.missing{index} }}}}" for index in range(100)),
}


@pytest.mark.parametrize("source", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_the_costliest_templates_allowed_still_finish_quickly(source: str) -> None:
    # A generous budget of CPU time (not wall time, so other work on the machine does not count):
    # these take about half a second to two seconds each.
    started = time.process_time()
    preview(EmailTemplate(subject="s", html=source), context())
    assert time.process_time() - started < 15


def test_each_part_and_each_recipient_gets_a_budget_of_its_own() -> None:
    """The budget is kept per part's render, not per recipient or per process: every part may use all
    of its iterations, and a render that used them all leaves nothing behind for the next one."""
    whole = f"{{% for i in range({MAX_LOOP_ITERATIONS}) %}}{{% endfor %}}"
    compiled = compile_template(EmailTemplate(subject=whole + "s", html=whole + "<p>h</p>", text=whole + "t"))
    over = compile_template(EmailTemplate(subject="s", text=whole + "{% for i in range(1) %}{% endfor %}"))
    for _ in range(3):
        assert isinstance(render(compiled, context()), RenderedEmail)
        failure = render(over, context())
        assert isinstance(failure, RenderFailure)
        assert [problem.kind for problem in failure.problems] == ["unsafe"]


def test_blanks_of_one_recipient_s_search_do_not_reach_the_next_render() -> None:
    """The parts of one render read the same fields: a missing one is named once, where it is first
    used. The blanks that search puts in its place are gone for the next recipient's render."""
    template = compile_template(
        EmailTemplate(subject="{{ enduser.title }} {{ enduser.first_name }}", text="{{ enduser.title }}")
    )
    failure = render(template, context())
    assert isinstance(failure, RenderFailure)
    assert [(problem.part, problem.field) for problem in failure.problems] == [
        ("subject", "enduser.title"),
    ]
    assert isinstance(render(template, context(title="CTO")), RenderedEmail)
    assert rendered(EmailTemplate(subject="{{ enduser.title | default('') }}x", text="t")).subject == "x"


@pytest.mark.parametrize(
    "source", ["{{ company.custom._values }}", "{{ company.custom._path }}", "{{ company.custom.__class__ }}"]
)
def test_a_merge_group_s_own_attributes_stay_out_of_reach(source: str) -> None:
    result = preview(EmailTemplate(subject="s", text=source), context())
    assert result.rendered is None
    assert [problem.kind for problem in result.problems] == ["unsafe"]


def test_custom_fields_read_by_attribute_or_by_key_are_the_same() -> None:
    email = rendered(
        EmailTemplate(
            subject="s",
            text="{{ company.custom.tier }} {{ company.custom['tier'] }} {{ company['custom'].seats }}",
        )
    )
    assert email.text == "gold gold 40"
