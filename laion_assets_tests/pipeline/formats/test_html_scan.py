"""The compiled scanner (`_html_scan.c`) against its pure-Python twin (`html_tokens`): the
same base and attribute dicts on the same pages, hostile and broken ones included, as str
and as bytes, with and without a `wanted` set."""

from __future__ import annotations

import random

import pytest

from laion_assets.pipeline.formats import html_tokens
from laion_assets.pipeline.formats.html import IMAGE_ATTRIBUTES
from laion_assets.pipeline.formats.html_tokens import compiled_scan, python_scan, scan
from laion_assets_tests.pipeline.formats.test_html_tokens import SOUP

WANTED = (None, IMAGE_ATTRIBUTES, frozenset(("ALT", "href")))
QUIRKS = [  # byte-level trouble on top of the tag soup of test_html_tokens
    "\x00", "\r", "\r\n", "\xff", "é", "&amp", "&notin", "&#x41;", "&#0;", "<IMG ALT=Q>",
    "<Script>", "</SCRIPT >", "<!--<script>", "</script", "<font face=x>", "<font>", "<svg/>",
    "<svg a=/>", "<base href>", "<base HREF='/z'>", "<img alt='\r\nx\x00'>", "<img alt=&lt;&gt>",
    "--!>", "<!---->", "<!--->", "<![cdata[", "<plaintext>", "<xmp>", "</xmp>", "</noembed >",
    "<mtext>", "</math>", "<annotation-xml encoding='TEXT/HTML'>", "<image/>", "<g>", "</g>",
    "<annotation-xml encoding=application/xhtml+xml>", "<img\talt=tab>", "<img/alt=sl>", "=",
    "<img data-src=a srcset='a 1x' width=1 height=2 alt=z alt=w>", "<a\x00b>", "</a\x00b>",
    "<svg><desc>", '<img alt="unterminated', "<\xe9>", "<img alt=\u20ac\U0001f600>",
]
HOSTILE = [
    "<img alt=a><!--" + "<img alt=x>" * 2_000,  # a comment left open
    "<img alt=a><a title=\"" + "<img alt=x>" * 2_000,  # a quote left open
    "<img alt=a><script>" + "<!--<script>" * 2_000,  # a script left open
    "<img alt=a><textarea>" + "<img alt=x>" * 2_000,
    "<img alt=a><a " * 2_000,
    "<" * 20_000 + "<img alt=a>",
    "</" * 10_000 + "<img alt=a>",
    "\x00<img\x00 alt=x><img a\x00lt=y alt=\x00z>" * 1_000,
    '<img alt="' + "x" * 200_000 + '">',
    "<img " + " ".join(f"a{i}=v" for i in range(20_000)) + " alt=many>",
    "<template>" * 500 + "<img alt=t>" + "</template>" * 499 + "<img alt=u>",
    "<svg>" * 2_000 + "<img alt=a>",
    "<math><mi>" * 1_000 + "<img alt=a>",
    "<svg><g>" + "</x>" * 2_000 + "<image alt=s/></svg><image alt=h>",
    "<div>" * 20_000 + "<img alt=deep>" + "</div>" * 20_000,
]


def both(page: str | bytes, wanted: frozenset[str] | None) -> None:
    expected = python_scan(page, wanted)
    assert compiled_scan(page, wanted) == expected, repr(page[:80])
    assert scan(page, wanted) == expected


def test_the_extension_is_built():
    assert html_tokens._compiled is not None, "the _html_scan extension is not built"


@pytest.mark.parametrize("page", HOSTILE)
def test_hostile_pages(page):
    for wanted in WANTED:
        both(page, wanted)
        both(page.encode(), wanted)


def test_seeded_tag_soup_with_byte_quirks():
    rng = random.Random(2026)
    for _ in range(1_500):
        soup = "".join(rng.choice(SOUP + QUIRKS) for _ in range(rng.randint(1, 30)))
        for page in (soup, soup.encode(), soup.encode("latin-1", "replace")):
            for wanted in WANTED:
                both(page, wanted)


def test_random_bytes():
    rng = random.Random(7)
    alphabet = b"<>/!?-=\"' \t\r\n\x00imgIMGaltsrc[]CDATAsvgmathscriptbasehref&;#x\xe2\x82\xac\xff"
    for _ in range(3_000):
        page = bytes(rng.choice(alphabet) for _ in range(rng.randint(1, 80)))
        both(page, None)
        both(page, IMAGE_ATTRIBUTES)


def test_broken_encodings_read_as_the_python_scanner_reads_them():
    page = (b'<img alt="\xff\xfe ok \xe2\x82" src=\xc3(.jpg>'
            b'<base href="/\xed\xa0\x80/"><img alt=\xf0\x9f>')
    both(page, None)
    both(page, IMAGE_ATTRIBUTES)
    base, images = compiled_scan(page, IMAGE_ATTRIBUTES)
    assert base == "/\ufffd\ufffd\ufffd/"
    assert images == [{"alt": "\ufffd\ufffd ok \ufffd", "src": "\ufffd(.jpg"}, {"alt": "\ufffd"}]


def test_defers_to_python_where_it_cannot_promise_the_same_output():
    lone_surrogate = "<img alt='a\udc80b'>"
    assert compiled_scan(lone_surrogate) is None
    assert scan(lone_surrogate) == python_scan(lone_surrogate) == (None, [{"alt": "a\udc80b"}])
    assert compiled_scan("<img alt=a>", frozenset(("ält",))) is None
    with pytest.raises(TypeError, match="str or bytes"):
        compiled_scan(12)
