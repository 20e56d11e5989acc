"""The cleaner: fixture pages in every NEWS-SHAPES shape, the generic rules, site profiles.

Each fixture page has its expected clean body next to it (``X.expected.txt``); the
cleaner must give exactly those paragraphs, with the shipped profiles and without any
(the generic rules alone), so a site that no profile names is cleaned too.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newswire import boilerplate
from newswire.boilerplate import is_boilerplate_line, prune_tree
from newswire.clean import clean_page, clean_response, decode_html
from newswire.errors import ConfigError, ExtractError
from newswire.model import FeedEntry, FetchedResponse
from newswire.profiles import Profiles, load_profiles, parse_profile, profiles_for
from newswire.urls import site_of

DATA = Path(__file__).parent / "data"
BASE = "http://127.0.0.1:8000"
PAGES = {
    "mt-leaders-agree": "/mt/news/2025/02/20/leaders-agree-new-talks-a1001",
    "mt-ruble-steadies": "/mt/news/2025/02/20/ruble-steadies-a1002",
    "mt-macron-reengagement": "/mt/news/2025/12/11/macron-reengagement-a1003",
    "mt-sanctions-review": "/mt/news/2025/02/21/sanctions-review-a1004",
    "agg-leaders-agree": "/agg/2025/02/20/leaders-agree-new-talks",
    "rw-summit-rewrite": "/rw/summit-rewrite",
    "tj-leaders-agree": "/tj/leaders-agree-talks-6612345-Feb2025/",
    "ru-novosti-1251": "/ru/novosti-a2001",
}
#: Boilerplate each shape carries (NEWS-SHAPES.md); none of it may be left.
BOILERPLATE = [
    "A Message from The Moscow Times", "Dear readers", "thirty years", "Once", "Monthly",
    "Annual", "Continue", "Not ready to support today", "Remind me later",
    "Sign up for our free weekly newsletter", "Read more", "Original url", "By Anna Petrova",
    "Photo:", "Advertisement", "We need your help now", "readers like you", "LAST UPDATE",
    "© AFP", "Want to know more", "JournalTv", "News in 60 seconds", "Close", "Support us",
]


def page(name: str) -> str:
    raw = (DATA / "pages" / f"{name}.html").read_bytes().replace(b"{{BASE}}", BASE.encode())
    return decode_html(raw)


def expected(name: str) -> list[str]:
    return (DATA / "pages" / f"{name}.expected.txt").read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize("profiles", [None, Profiles()], ids=["shipped-profiles", "generic-only"])
@pytest.mark.parametrize("name", sorted(PAGES))
def test_fixture_pages_give_their_whole_body_and_no_boilerplate(
    name: str, profiles: Profiles | None
) -> None:
    article = clean_page(page(name), url=BASE + PAGES[name], profiles=profiles)
    assert article is not None
    assert list(article.paragraphs) == expected(name)
    for phrase in BOILERPLATE:
        assert not any(p.startswith(phrase) or p == phrase for p in article.paragraphs), phrase


def test_a_page_read_from_a_file_finds_its_profile_by_site_name() -> None:
    article = clean_page(page("mt-leaders-agree"))
    assert article is not None
    assert article.profile == "The Moscow Times"
    assert article.site == "127.0.0.1:8000"  # from <link rel=canonical>


def test_metadata_feed_first_then_page() -> None:
    entry = FeedEntry(
        feed="mt", guid="g", link=BASE + "/x", canonical_url=BASE + "/x",
        title="Feed title", published="2025-02-20T11:05:00Z", authors=("Feed Author",),
    )
    from_feed = clean_page(page("mt-leaders-agree"), url=BASE + "/x", entry=entry)
    from_page = clean_page(page("mt-leaders-agree"), url=BASE + "/x")
    assert from_feed is not None and from_page is not None
    assert (from_feed.title, from_feed.published, from_feed.authors) == (
        "Feed title", "2025-02-20T11:05:00Z", ("Feed Author",))
    assert from_page.title == "European Leaders Agree to Hold New Talks on Ukraine Ceasefire Plan"
    assert from_page.published == "2025-02-20T11:05:00Z"  # +03:00 on the page
    assert from_page.authors == ("AFP",)
    assert from_page.language == "en"
    assert from_page.image == f"{BASE}/mt/media/2025/02/20/paris-meeting.jpg"
    assert from_page.canonical_url == BASE + PAGES["mt-leaders-agree"]


# -- generic rules -------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    "Read more: Kremlin Says No Date Set for New Round of Ukraine Talks",
    "READ MORE | Five things to know about the talks",
    "Related: Ireland to attend Geneva talks",
    "Читайте также: Синоптики пообещали оттепель",
    "Original url: https://example.com/a1001",
    "Photo: Ivan Sidorov / AFP",
    "Фото: пресс-служба мэрии",
    "Leaders arrive in Paris / AFP",
    "© AFP 2025",
    "©\u00a0AFP\u00a02025",
    "Copyright 2025 Reuters. All rights reserved.",
    "By Anna Petrova for AFP and John Keller for AFP",
    "By Maria Lopez, Senior Correspondent",
    "LAST UPDATE | 24 Feb",
    "Updated: 20 February 2025, 12:30",
    "20 February 2025, 12:30",
    "Feb. 20, 2025",
    "Thursday, 20 February 2025",
    "20.02.2025 11:20",
    "Share this article",
    "Join the conversation",
    "Sign up for our free weekly newsletter",
    "Advertisement",
    "Remind me later.",
    "Not ready to support today?",
    "Once",
    "A Message from The Moscow Times:",
    "Dear readers,",
    "Write to Jane Doe at jane.doe@example.com",
    "Contact the author: tips@example.com",
])
def test_boilerplate_lines(line: str) -> None:
    assert is_boilerplate_line(line)


@pytest.mark.parametrize("line", [
    "By the end of the year, the fund is expected to reach €2.4 billion.",
    "By Thursday evening, officials had agreed on a 12-point framework for the truce.",
    "Read more widely, the agreement is a sign that the coalition holds.",
    "Photo opportunities were few, as the leaders left through a side door.",
    "Updated figures from the ministry show a rise of three percent in exports, the "
    "highest monthly increase since the start of the war, according to officials.",
    "Continue reading the full interview in which the minister set out the plan.",
    "Dear readers of this column will recall my scepticism about the talks in Geneva, "
    "which has not changed since the last meeting of the coalition in January.",
    "He said the country would contribute €40 million to the reconstruction fund.",
    "Once the truce takes effect, monitors will be deployed along the line of contact.",
    "Contact with the crew was lost shortly after the ship left port on Monday evening.",
])
def test_body_lines_that_look_alike_are_kept(line: str) -> None:
    assert not is_boilerplate_line(line)


def _body(html: str) -> list[str]:
    article = clean_page(html, url="https://news.example/a", profiles=Profiles())
    assert article is not None
    return list(article.paragraphs)


STORY = [
    "The regional council voted on Tuesday to reopen the northern ferry route, closed since "
    "a storm damaged its pier two winters ago, after engineers signed off on the repairs.",
    "Councillors said the first sailings would carry freight only, with passenger services to "
    "follow in April once the new waiting room and ticket office are finished.",
]


#: A longer story, every paragraph its own (trafilatura drops repeated paragraphs).
LONG_STORY = [*STORY,
    "The pier's new steel pilings were driven last autumn, and divers checked the last of "
    "them in January, the harbour engineer told the council's transport committee.",
    "Freight operators welcomed the decision, saying lorries had been making a three-hour "
    "detour by the southern bridge since the route closed, at a cost to every shop.",
    "Residents of the northern villages asked for a later evening sailing in the summer "
    "months, which the operator said it would consider once the timetable is settled.",
    "The council will review the service after its first six months, and has set aside "
    "money for a second vessel should demand be higher than the operator expects.",
]


def _doc(inner: str) -> str:
    return f"<html><head><title>t</title></head><body><article>{inner}</article></body></html>"


def test_an_appeal_longer_than_a_short_story_goes_and_the_story_stays() -> None:
    appeal = """
      <div class="x1"><h3>Before you go</h3>
      <p>Our newsroom is small, and everything we publish is free to read, without a paywall,
      for anyone in the valley and beyond who wants to know what their council decides.</p>
      <p>Reporting like this takes time. We sit through meetings, read the papers and ask the
      questions nobody else asks, week after week, in every town we cover.</p>
      <p>If you can, please support us with a contribution today: every gift keeps local
      journalism alive for one more week.</p>
      <a href="/give">Monthly</a> <a href="/give">Annual</a> <a href="/give">Donate now</a>
      <p>Maybe later</p></div>"""
    body = "".join(f"<p>{p}</p>" for p in STORY)
    assert _body(_doc(f"<div>{body}{appeal}</div>")) == STORY


def test_a_story_about_donations_is_not_an_appeal() -> None:
    story = [
        "The charity said donations had doubled since the floods, as readers of local papers "
        "and listeners of community radio stations answered its call for contributions.",
        "Volunteers will support families in the worst-hit villages, and a monthly report "
        "will show how every contribution was spent, the charity's director said on Monday.",
        "Officials said the government would match every donation made before the end of "
        "March, up to a total of five million euros, to help rebuild bridges and roads.",
    ]
    assert _body(_doc("".join(f"<p>{p}</p>" for p in story))) == story


#: Pieces of the cue patterns and of words around them, for the cue tests below.
CUE_PIECES = [
    "donate", "donation", "contribute", "contribution", "support", "supporting us",
    "supporters", "make a gift", "become a member", "membership", "patreon", "one-time",
    "gift", "monthly", "chip in", "pledge", "dear reader", "readers", "a message from",
    "readers like you", "reader-funded", "independent journalism", "free of charge",
    "without a paywall", "free for everyone", "we need your help", "help us keep",
    "can you help", "costs money", "keeps it open", "before you go", "remind me later",
    "not ready to give", "maybe later", "no thanks", "already a member", "newsletter",
    "sign up", "signup", "subscribe", "subscription", "unsubscribe", "inbox", "un", "re",
    "the", "council", "said", "ferry", "a", "s", "-", "'", ".", ",", " ", "  ", "\n",
    "Support", "NEWSLETTER", "Remind Me Later",
]


@given(st.lists(st.sampled_from(CUE_PIECES), max_size=30).map("".join))
def test_the_cue_hints_never_hide_a_cue(text: str) -> None:
    # The hints (one search for any group's, then each group's) only spare the full
    # patterns text they cannot match: the bits are those of the patterns alone.
    stripped = " ".join(text.split()).lower()
    expected = 0
    if stripped in boilerplate._LABELS or stripped.rstrip(".!?:") in boilerplate._LABELS:
        expected |= boilerplate._LABEL_BIT
    for bit, _, pattern in boilerplate._CUE_GROUPS:
        if pattern.search(stripped):
            expected |= bit
    assert boilerplate._text_cues(text) == expected


def test_newsletter_box_with_a_form_goes() -> None:
    box = """<div class="n"><h4>Get the morning briefing</h4><p>The day's news in your inbox,
      every weekday at 7am. Sign up now.</p><form><input type="email"><button>Go</button>
      </form></div>"""
    assert _body(_doc(f"<p>{STORY[0]}</p>{box}<p>{STORY[1]}</p>")) == STORY


def test_a_box_named_as_boilerplate_that_holds_the_article_is_kept() -> None:
    body = "".join(f"<p>{p}</p>" for p in LONG_STORY)
    html = f"<html><body><div class='post share-wrapper'>{body}</div></body></html>"
    assert _body(html) == LONG_STORY


def test_a_class_every_body_paragraph_shares_names_the_body_not_a_box() -> None:
    # Some sites mark each metered paragraph class="paywall": that is the body.
    body = "".join(f"<p class='paywall'>{p}</p>" for p in LONG_STORY)
    html = f"{body}<div class='paywall'><p>Subscribe to read on. Already a subscriber?</p></div>"
    assert _body(_doc(html)) == LONG_STORY


def test_prune_tree_counts_what_it_removed() -> None:
    import lxml.html

    tree = lxml.html.document_fromstring(
        "<html><body><div class='ad-slot'>Advertisement</div><p>Text of the story.</p>"
        "<aside class='newsletter'>Sign up</aside></body></html>"
    )
    assert prune_tree(tree) == 2
    assert tree.text_content() == "Text of the story."


# -- profiles ------------------------------------------------------------------------------

def test_user_profile_cleans_its_site_and_replaces_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "themoscowtimes.toml").write_text(textwrap.dedent("""
        name = "mine"
        domains = ["themoscowtimes.com"]
        drop_lines = ['^The Paris meeting brought together']
        [[drop_runs]]
        start = '^In Kyiv,'
        count = 1
    """))
    profiles = profiles_for(tmp_path)
    assert [p.name for p in profiles.profiles].count("The Moscow Times") == 0
    html = page("mt-leaders-agree")
    article = clean_page(html, url="https://www.themoscowtimes.com/x", profiles=profiles)
    assert article is not None and article.profile == "mine"
    wanted = [p for p in expected("mt-leaders-agree")
              if not p.startswith(("The Paris meeting", "In Kyiv", "The talks come"))]
    assert list(article.paragraphs) == wanted


def test_profile_body_and_drop_selectors(tmp_path: Path) -> None:
    (tmp_path / "ledger.toml").write_text(textwrap.dedent("""
        domains = ["ledger.example"]
        body = [".story"]
        drop = [".pullquote"]
    """))
    inner = "".join(f"<p>{p}</p>" for p in STORY)
    html = (f"<html><body><div class='teaser'><p>{'Teaser text. ' * 30}</p></div>"
            f"<div class='story'>{inner}<div class='pullquote'><p>{STORY[0]}</p></div></div>"
            "</body></html>")
    article = clean_page(html, url="https://www.ledger.example/a",
                         profiles=load_profiles([tmp_path]))
    assert article is not None and article.profile == "ledger"
    assert list(article.paragraphs) == STORY


@pytest.mark.parametrize(("text", "message"), [
    ("domains = [", "not valid TOML"),
    ("name = 'x'", "needs domains or site_names"),
    ("domains = ['a.example']\ncolour = 'red'", "unknown key(s) colour"),
    ("domains = ['a.example']\ndrop = ['div[']", "bad CSS selector"),
    ("domains = ['a.example']\ndrop_lines = ['(']", "bad regular expression"),
    ("domains = 'a.example'\ndrop = [1]", "drop must be a list of strings"),
    ("domains = ['a.example']\n[[drop_runs]]\nstart = 'a'\nend = 'b'\ncount = 2",
     "end or count (not both)"),
])
def test_bad_profiles_are_clear_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^x\.toml: .*{re.escape(message)}"):
        parse_profile(text, "x.toml")


def test_shipped_profiles_load() -> None:
    names = {p.name for p in profiles_for(None).profiles}
    assert {"The Moscow Times", "TheJournal"} <= names


@pytest.mark.parametrize(("url", "site"), [
    ("https://www.themoscowtimes.com/2025/02/20/a", "themoscowtimes.com"),
    ("https://news.bbc.co.uk/x", "bbc.co.uk"),
    ("http://127.0.0.1:8000/x", "127.0.0.1:8000"),
    ("http://localhost/x", "localhost"),
    ("not a url", ""),
])
def test_site_of(url: str, site: str) -> None:
    assert site_of(url) == site


# -- bad input -------------------------------------------------------------------------------

@pytest.mark.parametrize("html", [
    "", "   \n ", "<html></html>", "<html><body></body></html>", "\x00\x01\x02",
    "<p>short</p>", "<html><body><nav><a href='/'>Home</a></nav></body></html>",
])
def test_pages_without_article_text_give_none(html: str) -> None:
    assert clean_page(html) is None


@pytest.mark.parametrize("html", [
    # A title never closed, paragraphs never closed, stray end tags.
    "<html><head><title>t</head><body><article><p>" + STORY[0] + "<p>" + STORY[1]
    + "<div><span></article></i></b></body>",
    # No <html>, <head> or <body>, unquoted attributes, a table cell left open.
    "<meta charset=utf-8><div class=story><p>" + STORY[0] + "</div></div><table><tr><td>"
    "<p>" + STORY[1],
])
def test_broken_html_still_gives_its_text(html: str) -> None:
    assert _body(html) == STORY


def test_deeply_nested_page_gives_an_outcome() -> None:
    html = "<html><body>" + "<div>" * 5000 + "".join(f"<p>{p}</p>" for p in STORY) + "</body>"
    article = clean_page(html, profiles=Profiles())
    assert article is None or all(p in STORY for p in article.paragraphs)


@pytest.mark.parametrize(("content_type", "message"), [
    ("application/pdf", "is not an HTML page (application/pdf)"),
    ("image/png", "is not an HTML page (image/png)"),
])
def test_non_html_responses_are_clear_errors(content_type: str, message: str) -> None:
    response = FetchedResponse(BASE + "/a", 200, {"content-type": content_type}, b"%PDF-1.4")
    with pytest.raises(ExtractError, match=re.escape(message)):
        clean_response(response)


def test_a_page_with_its_charset_only_in_meta() -> None:
    raw = (DATA / "pages" / "ru-novosti-1251.html").read_bytes()
    response = FetchedResponse(BASE + PAGES["ru-novosti-1251"], 200,
                               {"content-type": "text/html"}, raw)
    assert list(clean_response(response).paragraphs) == expected("ru-novosti-1251")


def test_a_gigantic_page_is_cleaned_in_bounded_memory(tmp_path: Path) -> None:
    """A 9 MiB page (the page limit is 10 MiB) in a process of its own: it finishes,
    and its peak memory stays within a fixed bound (not a timing test: the timeout only
    keeps a hang from blocking the suite)."""
    paragraph = "<p>{} " + " ".join(STORY) + "</p>\n"
    count = 9 * 1024 * 1024 // len(paragraph)
    html = "<html><body><article>" + "".join(paragraph.format(i) for i in range(count))
    (tmp_path / "big.html").write_text(html + "</article></body></html>")
    # VmHWM is this process's own peak: ru_maxrss would carry pytest's peak across exec.
    script = textwrap.dedent(f"""
        from pathlib import Path
        from newswire.clean import clean_page
        article = clean_page(Path({str(tmp_path / 'big.html')!r}).read_text())
        hwm = next(line for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
        print(len(article.paragraphs) if article else 0, int(hwm.split()[1]) // 1024)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=600, check=True)
    paragraphs, peak_mib = map(int, done.stdout.split())
    assert paragraphs > 1000
    assert peak_mib < 512, f"peak RSS {peak_mib} MiB for a 9 MiB page"  # about 300 seen
