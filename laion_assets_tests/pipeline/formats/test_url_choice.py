"""The compiled URL choice (`_html_scan.first_url`, ada's C functions called from C) against
its pure-Python twin (`html.first_url`): the same URL, host, attribute and reject reason for
every value, or None where it leaves the value to Python; and the same choice on every
`<img>` of the real pages."""

from __future__ import annotations

import random

import pytest

from laion_assets.pipeline.formats import html
from laion_assets.pipeline.formats.html import choose_url_host, image_attributes
from laion_assets_tests.pipeline.formats.test_html_tokens import real_pages  # noqa: F401

NAMES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url", "src")
BASES = (
    "https://www.example.com/dir/page.html?q=1",
    "http://example.com:8080/a/b/",
    "https://xn--bcher-kva.example/",
    "http://[::1]:81/x",
    "http://a.b/",
)
VALUES = [
    "img/a.jpg", "./img/a.jpg", "../../../../a.jpg", "/abs/a.jpg", "//cdn.example.net/x.png",
    "?x=1", "#top", "http://other.example/a.jpg", "HTTP://EXAMPLE.com/A.JPG",
    "http://example.com:80/a.jpg", "https://example.com:443/a.jpg", "http://example.com./a.jpg",
    "http://example.com", "https://bücher.example/bild.jpg", "/a b.jpg", "/café.jpg",
    "/%E2%82%AC.jpg", "/a.jpg?w=1&h=a b|c", "/a.jpg?ord=[ts]", "http:///a.jpg", "..\\img\\a.jpg",
    "data:image/gif;base64,R0lGOD", " DATA:x", "javascript:void(0)", "mailto:a@b.c", "ftp://a/b",
    "blob:https://a/b", "http://[::1/", "http://a:99999/", "http://a b/", "http://u:p@a/b.jpg",
    "http://@a/", "//a@b/c", "http://[::1]:8080/a.png", "http://a.:81/b", "http://./x",
    "http://..", " \t\n/x.jpg \x0c", "\r\n", " ", "/" + "a" * 2100, "/" + "a" * 2030,
    "http://\u00e9.example/", "http://ex\u200bample.com/", "/\ud800.jpg", "\x00", "/a#b#c",
    "https://EXAMPLE.com.:443/", "http://0x7f.1/", "http://1.2.3.4.5/", "%2e%2e/a.jpg",
]


def same(attrs: dict, base: str) -> bool:
    """Both loops agree; False where the compiled one left the attributes to Python."""
    compiled = html._first_url(attrs, NAMES, base)
    expected = html.first_url(attrs, NAMES, base)
    if compiled is not None:  # None: the compiled loop leaves this value to Python
        assert compiled == expected, (attrs, base)
    return compiled is not None


def test_the_compiled_loop_is_bound():
    assert html._first_url is not None, "the _html_scan extension is not built"


@pytest.mark.parametrize("base", BASES)
def test_one_value(base):
    compared = sum(same({"src": value}, base) + same({"data-src": value, "src": "/f.jpg"}, base)
                   for value in VALUES)
    assert compared == 2 * (len(VALUES) - 6)  # 5 hosts ending in "." and a lone surrogate


def test_reasons_come_from_the_first_value_tried():
    base = BASES[0]
    attrs = {"data-src": "data:x", "data-lazy": "javascript:x", "src": "http://u@a/"}
    assert html._first_url(attrs, NAMES, base) == (None, "", "", "data_uri")
    assert html._first_url({"src": None, "alt": "x"}, NAMES, base) == (None, "", "", None)
    assert html._first_url({"src": ""}, NAMES, base) == (None, "", "", None)
    found = html._first_url({"data-src": "", "data-url": " /b.png ", "src": "/c.png"}, NAMES,
                            base)
    assert found == ("https://www.example.com/b.png", "www.example.com", "data-url", None)


def test_left_to_python_where_c_would_read_differently():
    assert html._first_url({"src": "http://example.com./a.jpg"}, NAMES, BASES[0]) is None
    assert html._first_url({"src": "/\ud800.jpg"}, NAMES, BASES[0]) is None
    assert choose_url_host({"src": "http://example.com./a.jpg"}, BASES[0])[:2] == (
        "http://example.com/a.jpg", "example.com")


def test_seeded_random_values():
    pieces = ["http://", "https://", "HTTPS://", "//", "/", "..", ".", "data:", "javascript:",
              " ", "\t", "\n", "#", "?", "@", ":", "[", "]", "::1", "ex.com", "ex.com.", "é",
              "%", "%41", "\\", "a", "80", "443", "x" * 700, "bücher", "\x7f", "|"]
    rng = random.Random(12)
    compared = 0
    for _ in range(3_000):
        attrs = {name: "".join(rng.choices(pieces, k=rng.randint(0, 6)))
                 for name in rng.sample(NAMES, rng.randint(1, 3))}
        compared += same(attrs, rng.choice(BASES))
    assert compared > 2_500


def test_the_same_choice_on_every_real_image(real_pages):  # noqa: F811
    images = compared = 0
    for _name, url, page in real_pages:
        base, images_of_page = image_attributes(page, url)
        for attrs in images_of_page:
            compared += same(attrs, base)
            images += 1
    assert compared == images > 2500
