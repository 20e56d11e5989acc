"""Page bytes to text (``decode_html``) and feed HTML to paragraphs (``paragraphs_from_html``).

The character-set order follows the WHATWG encoding sniffing algorithm: BOM,
then the HTTP charset, then ``<meta>``, then UTF-8 if it decodes, else
windows-1252.
"""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newswire import clean
from newswire.clean import decode_html, paragraphs_from_html

RU = "Привет, мир"


def page(head: str, body: bytes) -> bytes:
    return f"<html><head>{head}</head><body><p>".encode("ascii") + body + b"</p></body></html>"


# -- decode_html ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "expected"),
    [
        # A BOM wins over everything, and is not part of the text.
        (codecs.BOM_UTF8 + RU.encode("utf-8"), "text/html; charset=windows-1251", RU),
        (codecs.BOM_UTF16_LE + RU.encode("utf-16-le"), "text/html", RU),
        (codecs.BOM_UTF16_BE + RU.encode("utf-16-be"), "", RU),
        # The HTTP charset, case-insensitive, over a <meta> that disagrees.
        (RU.encode("koi8-r"), "text/html; charset=KOI8-R", RU),
        (page('<meta charset="utf-8">', RU.encode("cp1251")), 'text/html; charset="cp1251"',
         f"<html><head><meta charset=\"utf-8\"></head><body><p>{RU}</p></body></html>"),
        # Undeclared: UTF-8 when it decodes, else windows-1252.
        ("Grüße “quoted”".encode(), "", "Grüße “quoted”"),
        (b"caf\xe9 \x93quoted\x94", "text/html", "café “quoted”"),
        # latin-1 and ascii labels mean windows-1252 (WHATWG Encoding).
        (b"\x93hi\x94", "text/html; charset=iso-8859-1", "“hi”"),
        (b"\x93hi\x94", "text/html; charset=us-ascii", "“hi”"),
        # An unknown label is ignored: UTF-8 if it decodes, else windows-1252.
        ("Grüße".encode(), "text/html; charset=x-no-such-charset", "Grüße"),
        (b"Gr\xfc\xdfe", "text/html; charset=x-no-such-charset", "Grüße"),
        # NUL and other controls go; tab, newline and carriage return stay.
        (b"a\x00b\x01c\x08d\x0b\x0ce\x1bf\x7fg\th\ni\rj", "", "abcdefg\th\ni\rj"),
        ("a\x00b".encode("utf-16-le"), "text/html; charset=utf-16le", "ab"),
        (b"", "", ""),
    ],
)
def test_decode_html(body: bytes, content_type: str, expected: str) -> None:
    assert decode_html(body, content_type) == expected


@pytest.mark.parametrize(
    ("head", "encoding"),
    [
        ('<meta charset="windows-1251">', "cp1251"),
        ("<META CHARSET=windows-1251>", "cp1251"),
        ('<meta http-equiv="Content-Type" content="text/html; charset=koi8-r">', "koi8-r"),
    ],
)
@pytest.mark.parametrize("content_type", ["", "text/html"])
def test_meta_charset_without_a_header_charset(
    head: str, encoding: str, content_type: str
) -> None:
    text = decode_html(page(head, RU.encode(encoding)), content_type)
    assert f"<p>{RU}</p>" in text


def test_meta_utf16_means_utf8() -> None:
    text = decode_html(page('<meta charset="utf-16">', RU.encode()), "")
    assert f"<p>{RU}</p>" in text


@pytest.mark.parametrize(
    "label", ["base64", "rot13", "hex", "undefined", "idna", "utf-7", "unicode_escape", "punycode"]
)
def test_labels_outside_the_encoding_standard_are_ignored(label: str) -> None:
    body = rb"<p>Hello +2AA- \ud800 world</p>"
    assert decode_html(body, f"text/html; charset={label}") == body.decode()
    assert decode_html(page(f'<meta charset="{label}">', body), "").count("Hello +2AA-") == 1


CONTENT_TYPES = ["", "text/html", "text/html; charset=utf-8", "text/html; charset=windows-1251",
                 "text/html; charset=utf-16"]


@given(st.binary(), st.sampled_from(CONTENT_TYPES))
def test_decode_html_always_gives_storable_text(body: bytes, content_type: str) -> None:
    text = decode_html(body, content_type)
    assert isinstance(text, str)
    assert "\x00" not in text
    text.encode("utf-8")  # no lone surrogates


@given(st.text(st.characters(codec="utf-8", exclude_characters="<")))  # no <meta charset>
def test_undeclared_utf8_reads_back_without_controls(text: str) -> None:
    kept = text.encode("utf-8").removeprefix(codecs.BOM_UTF8).decode("utf-8")
    expected = "".join(c for c in kept if c in "\t\n\r" or not (c < " " or c == "\x7f"))
    assert decode_html(text.encode("utf-8")) == expected


#: Codecs of the control check: the two it trusts, and others it must not (cp037 is
#: EBCDIC: its b"\x27" is ESC).
_CHECK_CODECS = ["utf-8", "cp1252", "utf-16-le", "shift_jis", "koi8-r", "cp037"]


def _decode_then_scan(body: bytes, codec: str, errors: str) -> str | type[Exception]:
    try:
        return clean._sanitize(body.decode(codec, errors))
    except UnicodeDecodeError:
        return UnicodeDecodeError


def _byte_checked(body: bytes, codec: str, errors: str) -> str | type[Exception]:
    try:
        return clean._decoded(body, codec, errors)
    except UnicodeDecodeError:
        return UnicodeDecodeError


@pytest.mark.parametrize("codec", _CHECK_CODECS)
def test_the_byte_check_on_every_byte(codec: str) -> None:
    # _decoded skips the character scan when the bytes show no control character: the
    # same text as decoding then scanning, or the same error, for every byte alone,
    # after ASCII and after each byte that opens a UTF-8 sequence.
    for errors in ("strict", "replace"):
        for byte in range(256):
            for before in (b"", b"a", b"\xc3", b"\xe2\x82", b"\xf0\x9f\x98"):
                body = before + bytes([byte]) + b"z"
                assert _byte_checked(body, codec, errors) == _decode_then_scan(
                    body, codec, errors), (body, codec, errors)


@given(st.one_of(st.binary(), st.text().map(lambda t: t.encode("utf-8", "replace"))),
       st.sampled_from(_CHECK_CODECS), st.sampled_from(["strict", "replace"]))
def test_the_byte_check_removes_what_the_character_scan_does(
    body: bytes, codec: str, errors: str,
) -> None:
    assert _byte_checked(body, codec, errors) == _decode_then_scan(body, codec, errors)


# -- paragraphs_from_html ------------------------------------------------------


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>One</p><p>Two</p>", ("One", "Two")),
        ("<h2>Head</h2><p>Body &amp; soul</p><blockquote>Quote</blockquote>",
         ("Head", "Body & soul", "Quote")),
        ("<p>  spread\n   over\tlines </p>", ("spread over lines",)),
        # Nested blocks are read once, at the innermost level.
        ("<ul><li><p>A</p></li><li>B</li></ul>", ("A", "B")),
        ("<blockquote><p>Q1</p><p>Q2</p></blockquote>", ("Q1", "Q2")),
        # Script, style and friends are dropped, the text around them kept.
        ("<p>Keep</p><script>drop()</script><style>p{}</style><noscript>no</noscript>",
         ("Keep",)),
        ("<div>hi<script>bad()</script> there</div>", ("hi there",)),
        ("<p>Text<figure><img src=x><figcaption>Caption</figcaption></figure></p>", ("Text",)),
        # Plain text: blank lines separate paragraphs, single newlines do not.
        ("One\n\nTwo\n \n\nThree\nstill three", ("One", "Two", "Three still three")),
        ("just text", ("just text",)),
        # Nothing to read.
        ("", ()),
        ("  \n\t ", ()),
        ("<p> </p><p></p>", ()),
        ("<script>only()</script>", ()),
        ("<p>a\x00b\x1bc</p>", ("abc",)),
    ],
)
def test_paragraphs_from_html(fragment: str, expected: tuple[str, ...]) -> None:
    assert paragraphs_from_html(fragment) == expected


@pytest.mark.parametrize(
    ("fragment", "expected"),
    [
        ("<p>One</p>Loose<p>Two</p>", ("One", "Loose", "Two")),
        ("Lead<p>Body</p>", ("Lead", "Body")),
        ("<li>Item<ul><li>Sub</li></ul></li>", ("Item", "Sub")),
    ],
)
def test_loose_text_between_blocks_is_kept(fragment: str, expected: tuple[str, ...]) -> None:
    assert paragraphs_from_html(fragment) == expected


@pytest.mark.parametrize(
    "fragment", ["Line one<br>Line two", "<div>Line one</div><div>Line two</div>"]
)
def test_line_breaks_and_divs_do_not_glue_words(fragment: str) -> None:
    assert " ".join(paragraphs_from_html(fragment)) == "Line one Line two"


@given(st.text())
def test_paragraphs_are_clean_and_non_empty(fragment: str) -> None:
    paragraphs = paragraphs_from_html(fragment)
    assert isinstance(paragraphs, tuple)
    for p in paragraphs:
        assert p and p == " ".join(p.split())
        assert "\x00" not in p
