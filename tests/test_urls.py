"""URL canonicalization: one spelling per article."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newswire.urls import InvalidURL, canonicalize

CASES = [
    ("HTTPS://Example.COM:443/a/./b/../c?b=2&a=1#top", "https://example.com/a/c?a=1&b=2"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com:80/x", "http://example.com/x"),
    ("http://example.com:8080/x", "http://example.com:8080/x"),
    ("https://example.com/a?utm_source=rss&utm_medium=feed&id=7", "https://example.com/a?id=7"),
    ("https://example.com/a?fbclid=abc&gclid=def", "https://example.com/a"),
    ("https://example.com/a?UTM_Campaign=x", "https://example.com/a"),
    ("https://example.com/a#comments", "https://example.com/a"),
    ("  https://example.com/a?  \n", "https://example.com/a"),
    ("https://example.com/a/?", "https://example.com/a/"),
    ("<https://example.com/a>", "https://example.com/a"),
    ("https://example.com/%7Euser/a%2fb", "https://example.com/~user/a%2Fb"),
    ("https://example.com/a b", "https://example.com/a%20b"),
    ("https://user:pw@example.com/a", "https://example.com/a"),
    ("https://example.com./a", "https://example.com/a"),
    ("https://BÜCHER.example/a", "https://xn--bcher-kva.example/a"),
    ("https://example.com/a?q=", "https://example.com/a?q="),
    ("http://[::1]:80/x", "http://[::1]/x"),
]


@pytest.mark.parametrize(("url", "expected"), CASES)
def test_canonicalize(url: str, expected: str) -> None:
    assert canonicalize(url) == expected


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "file:///etc/passwd", "ftp://example.com/a", "/relative",
            "mailto:a@b.c", "http://", "http://example.com:99999/"],
)
def test_rejects_what_is_not_an_http_url(url: str) -> None:
    with pytest.raises(InvalidURL):
        canonicalize(url)


segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._~%/", max_size=12)
param = st.tuples(st.sampled_from(["id", "page", "q", "lang"]), st.text("abc123", max_size=5))
hosts = st.sampled_from(["example.com", "News.Example.ORG", "www.thejournal.ie", "127.0.0.1"])


@st.composite
def urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP"]))
    path = "/".join(draw(st.lists(segment, max_size=4)))
    params = draw(st.lists(param, max_size=3))
    query = "&".join(f"{k}={v}" for k, v in params)
    return f"{scheme}://{draw(hosts)}/{path}" + (f"?{query}" if query else "")


@given(urls())
def test_idempotent(url: str) -> None:
    once = canonicalize(url)
    assert canonicalize(once) == once


@given(urls(), st.text("abcxyz", min_size=1, max_size=8), st.text("abc-_", max_size=8))
def test_tracking_fragment_and_case_do_not_matter(url: str, campaign: str, fragment: str) -> None:
    joiner = "&" if "?" in url else "?"
    tracked = f"{url}{joiner}utm_source=rss&utm_campaign={campaign}&fbclid=x#{fragment}"
    scheme, rest = tracked.split("://", 1)
    host, _, tail = rest.partition("/")
    shouted = f"{scheme.upper()}://{host.upper()}/{tail}"
    assert canonicalize(shouted) == canonicalize(url)
