"""The link rewriter: which links become click URLs, what they redirect to, and that nothing else
of the HTML changes."""

from __future__ import annotations

import itertools
from html import escape

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from touchline.outbound.track.links import TrackingUrls, is_trackable, new_token, rewrite, with_utm

URLS = TrackingUrls("https://t.example")


def _rewrite(html: str, **switches: object) -> tuple[str, list[tuple[str, str | None]]]:
    counter = itertools.count()
    opens = bool(switches.pop("opens", True))
    clicks = bool(switches.pop("clicks", True))
    utm = switches.pop("utm", None)
    tracked = rewrite(
        html,
        opens=opens,
        clicks=clicks,
        urls=URLS,
        utm=utm,
        token=lambda: f"tok{next(counter)}",  # type: ignore[arg-type]
    )
    return tracked.html, [(link.kind, link.url) for link in tracked.links]


def test_links_are_rewritten_and_the_pixel_and_honeypot_added_before_the_body_ends() -> None:
    html = (
        '<html><body><p>Hi <a class="x" href="https://acme.example/a?b=1&amp;c=2#top">plan</a>'
        ' <a href="mailto:x@acme.example">mail</a> <a href="#faq">faq</a> <a href="/relative">rel</a>'
        " <a href=\"javascript:alert(1)\">js</a> <A HREF='http://Acme.example/b'>b</A>"
        ' <a href="https://acme.example/c" data-touchline-track="off">c</a></p></body></html>'
    )
    out, links = _rewrite(html)
    assert links == [
        ("click", "https://acme.example/a?b=1&c=2#top"),
        ("click", "http://Acme.example/b"),
        ("honeypot", None),
        ("open", None),
    ]
    assert '<a class="x" href="https://t.example/t/c/tok0">plan</a>' in out
    assert '<A HREF="https://t.example/t/c/tok1">b</A>' in out
    for untouched in ("mailto:x@acme.example", "#faq", "/relative", "javascript:alert(1)"):
        assert f'href="{untouched}"' in out
    assert '<a href="https://acme.example/c" data-touchline-track="off">c</a>' in out
    assert out.endswith(
        '<a href="https://t.example/t/c/tok2" style="display:none" aria-hidden="true" tabindex="-1"></a>'
        '<img src="https://t.example/t/o/tok3.gif" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0"></body></html>'
    )


def test_each_switch_adds_only_its_own_part() -> None:
    html = '<p><a href="https://acme.example/">x</a></p>'
    assert _rewrite(html, opens=False, clicks=False) == (html, [])
    only_opens, links = _rewrite(html, clicks=False)
    assert links == [("open", None)]
    assert only_opens.startswith(html)
    assert "display:none" not in only_opens
    only_clicks, links = _rewrite(html, opens=False)
    assert [kind for kind, _ in links] == ["click", "honeypot"]
    assert "<img" not in only_clicks


def test_links_in_comments_scripts_and_after_unterminated_markup_stay_as_they_are() -> None:
    html = (
        '<!-- <a href="https://a.example/1">--><script>var s = \'<a href="https://a.example/2">\';</script>'
        '<a href="https://a.example/3">3</a><!-- never closed <a href="https://a.example/4">'
    )
    out, links = _rewrite(html, opens=False)
    assert links[0] == ("click", "https://a.example/3")
    assert len(links) == 2  # and the honeypot
    assert out.count("https://a.example/") == 3


def test_utm_parameters_are_added_without_replacing_the_links_own() -> None:
    utm = {"utm_source": "touchline", "utm_medium": "email", "utm_campaign": "Renewal Q1", "other": "x"}
    assert with_utm("https://a.example/p?utm_source=site&q=1#f", utm) == (
        "https://a.example/p?utm_source=site&q=1&utm_medium=email&utm_campaign=Renewal+Q1#f"
    )
    assert with_utm("https://a.example", {"utm_source": ""}) == "https://a.example"
    _, links = _rewrite('<a href="https://a.example/x">x</a>', utm=utm, opens=False)
    assert links[0] == (
        "click",
        "https://a.example/x?utm_source=touchline&utm_medium=email&utm_campaign=Renewal+Q1",
    )


def test_tokens_carry_128_random_bits_and_nothing_else() -> None:
    tokens = {new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(len(token) == 22 and token.replace("-", "").replace("_", "").isalnum() for token in tokens)


def test_only_absolute_http_addresses_are_trackable() -> None:
    assert is_trackable("https://a.example")
    assert is_trackable("HTTP://a.example/x")
    for href in ("https:", "https://", "http:/a.example", "//a.example", "ftp://a.example", "mailto:a@b", ""):
        assert not is_trackable(href)


# --- properties ------------------------------------------------------------------------------------

_TEXT = st.text(st.characters(blacklist_characters="<&\r", blacklist_categories=("Cs",)), max_size=20)
_PATH = st.text(st.sampled_from("abcXYZ019-._~/%?=&+"), max_size=15)
_HOST = st.sampled_from(["a.example", "B.example", "xn--bcher-kva.example"])
_TRACKED_HREF = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}/{path}",
    st.sampled_from(["http", "https", "HTTPS"]),
    _HOST,
    _PATH,
)
_UNTRACKED_HREF = st.sampled_from(
    ["mailto:a@b.example", "#top", "/relative", "tel:+1", "javascript:void(0)", ""]
)


@st.composite
def _quoted(draw: st.DrawFn, value: str) -> str:
    written = escape(value, quote=True)
    style = draw(st.sampled_from(["double", "single", "bare"]))
    if style == "single":
        return f"'{written}'"
    if style == "bare" and written and not any(char in written for char in " \"'=<>`"):
        return written
    return f'"{written}"'


@st.composite
def _document(draw: st.DrawFn) -> tuple[list[str | tuple[str, str, str]], list[str]]:
    """Pieces of HTML: plain markup, or (before href value, href, after) for a link to be tracked."""
    pieces: list[str | tuple[str, str, str]] = []
    hrefs: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["text", "tracked", "untracked", "off", "markup", "comment"]))
        if kind == "text":
            pieces.append(escape(draw(_TEXT), quote=False))
        elif kind == "markup":
            pieces.append(
                draw(
                    st.sampled_from(
                        ["<p>", "</p>", "<br/>", '<img src="https://a.example/i.png">', "<div class=x>"]
                    )
                )
            )
        elif kind == "comment":
            pieces.append(f"<!-- {escape(draw(_TEXT), quote=False)} -->")
        elif kind == "untracked":
            pieces.append(
                f"<a href={draw(_quoted(draw(_UNTRACKED_HREF)))}>{escape(draw(_TEXT), quote=False)}</a>"
            )
        elif kind == "off":
            pieces.append(f'<a data-touchline-track="off" href={draw(_quoted(draw(_TRACKED_HREF)))}>x</a>')
        else:
            href = draw(_TRACKED_HREF)
            before = draw(st.sampled_from(["<a href=", '<a class="c" href=', "<a\ttitle='t'\nhref = "]))
            after = (
                draw(st.sampled_from([">", ' target="_blank">', "\n>"]))
                + escape(draw(_TEXT), quote=False)
                + "</a>"
            )
            pieces.append((before, draw(_quoted(href)), after))
            hrefs.append(href)
    return pieces, hrefs


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_document(), st.booleans())
def test_only_tracked_hrefs_change_and_each_redirects_to_its_own_address(
    document: tuple[list[str | tuple[str, str, str]], list[str]], opens: bool
) -> None:
    pieces, hrefs = document
    html = "".join(piece if isinstance(piece, str) else "".join(piece) for piece in pieces)
    tracked = rewrite(
        html,
        opens=opens,
        clicks=True,
        urls=URLS,
        token=iter(f"t{n:020d}" for n in itertools.count()).__next__,
    )
    clicks = [link for link in tracked.links if link.kind == "click"]
    assert [link.url for link in clicks] == hrefs
    assert [link.position for link in clicks] == list(range(1, len(hrefs) + 1))
    expected = []
    tokens = iter(clicks)
    for piece in pieces:
        if isinstance(piece, str):
            expected.append(piece)
        else:
            expected.append(f'{piece[0]}"{URLS.click_url(next(tokens).token)}"{piece[2]}')
    assert tracked.html.startswith("".join(expected))
    extras = tracked.html[len("".join(expected)) :]
    assert extras.count("<a ") == 1
    assert ("<img " in extras) == opens


@settings(deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_kept_but_for_the_hrefs_it_tracks(html: str) -> None:
    tracked = rewrite(html, opens=False, clicks=True, urls=URLS)
    clicks = [link for link in tracked.links if link.kind == "click"]
    if not clicks:
        assert tracked.html.startswith(html)
    for link in clicks:
        assert link.url is not None
        assert is_trackable(link.url)
