"""Which `<img>` a page has, and which URL each one stands for (docs/extraction.md)."""

from __future__ import annotations

import pytest

from laion_assets.pipeline.formats.html import (
    LAZY_ATTRIBUTES,
    choose_url,
    iter_image_candidates,
    widest_candidate,
)

PAGE = "https://example.com/a/page.html"


def candidates(html: str, page_url: str = PAGE) -> list:
    return list(iter_image_candidates(html, page_url))


def alts(html: str) -> list[str | None]:
    return [c.alt for c in candidates(html)]


# -- which <img> count ---------------------------------------------------------------------


def test_noscript_images_count_scripts_comments_templates_do_not():
    html = """<html><head><noscript><img src=h.jpg alt=head-noscript></noscript></head><body>
    <!-- <img src=c.jpg alt=comment> -->
    <script>document.write('<img src=s.jpg alt=script>')</script>
    <template><img src=t.jpg alt=template></template>
    <noscript><img src=n.jpg alt=body-noscript></noscript>
    <textarea><img src=ta.jpg alt=textarea></textarea>
    <style><img src=st.jpg alt=style></style>
    <title><img src=ti.jpg alt=title></title>
    <img src=plain.jpg alt=plain>
    </body></html>"""
    assert alts(html) == ["head-noscript", "body-noscript", "plain"]


def test_image_tag_is_img_as_in_browsers_and_svg_image_is_not():
    html = '<image src="a.jpg" alt="image tag"><svg><image href="b.png"/></svg>'
    found = candidates(html)
    assert [(c.url, c.alt) for c in found] == [("https://example.com/a/a.jpg", "image tag")]


def test_document_order_and_tag_case():
    html = '<IMG SRC="1.jpg" ALT="one"><div><p><img src="2.jpg" alt="two"></p></div><img alt=three>'
    assert alts(html) == ["one", "two", "three"]


def test_picture_source_is_not_used_its_img_is():
    html = """<picture>
      <source srcset="big.webp 1200w" type="image/webp">
      <source media="(min-width: 800px)" srcset="wide.jpg">
      <img src="fallback.jpg" alt="a picture">
    </picture>"""
    (only,) = candidates(html)
    assert (only.url, only.url_source) == ("https://example.com/a/fallback.jpg", "src")


def test_broken_markup_is_repaired_as_browsers_do():
    html = '<table><tr><img src="t.jpg" alt="foster parented"><td>cell</td></tr></table><p><img'
    assert alts(html) == ["foster parented"]


# -- alt text as parsed ----------------------------------------------------------------------


def test_alt_is_raw_with_entities_decoded_and_first_attribute_wins():
    html = '<img src=x.jpg alt="Tom &amp; Jerry&nbsp;&#8211; &eacute;t&eacute;" alt=2nd>'
    (c,) = candidates(html)
    assert c.alt == "Tom & Jerry\xa0\u2013 été"


def test_missing_alt_empty_alt_and_bare_alt():
    found = candidates('<img src=a.jpg><img src=b.jpg alt=""><img src=c.jpg alt>')
    assert [c.alt for c in found] == [None, "", ""]


# -- which URL -------------------------------------------------------------------------------


def test_lazy_attribute_wins_over_placeholder_src():
    html = '<img src="data:image/gif;base64,R0lGOD" data-src="/real.jpg" alt="lazy">'
    (c,) = candidates(html)
    assert (c.url, c.url_source, c.reject_reason) == (
        "https://example.com/real.jpg", "data-src", None,
    )

    html = '<img src="/spinner.gif" data-lazy-src="/real.jpg" alt="lazy">'
    (c,) = candidates(html)
    assert (c.url, c.url_source) == ("https://example.com/real.jpg", "data-lazy-src")


@pytest.mark.parametrize("position", range(len(LAZY_ATTRIBUTES)))
def test_lazy_attribute_order(position):
    attrs = {name: f"/{name}.jpg" for name in LAZY_ATTRIBUTES[position:]}
    attrs["src"] = "/src.jpg"
    name = LAZY_ATTRIBUTES[position]
    assert choose_url(attrs, PAGE) == (f"https://example.com/{name}.jpg", name, None)


def test_src_when_no_lazy_attribute():
    assert choose_url({"src": "b.jpg", "srcset": "c.jpg 2x"}, PAGE) == (
        "https://example.com/a/b.jpg", "src", None,
    )


def test_unusable_lazy_value_falls_through_to_src():
    attrs = {"data-src": "javascript:load()", "src": "/ok.jpg"}
    assert choose_url(attrs, PAGE) == ("https://example.com/ok.jpg", "src", None)
    attrs = {"data-original": "", "data-src": "   ", "src": "/ok.jpg"}
    assert choose_url(attrs, PAGE) == ("https://example.com/ok.jpg", "src", None)


def test_srcset_only_when_no_lazy_attribute_or_src_gives_a_url():
    attrs = {"src": "data:image/gif;base64,R0lGOD", "srcset": "/s-320.jpg 320w, /s-640.jpg 640w"}
    assert choose_url(attrs, PAGE) == ("https://example.com/s-640.jpg", "srcset", None)
    attrs = {"data-srcset": "/d-1x.jpg 1x, /d-2x.jpg 2x"}
    assert choose_url(attrs, PAGE) == ("https://example.com/d-2x.jpg", "data-srcset", None)
    attrs = {"srcset": "", "data-lazy-srcset": "/l.jpg 100w"}
    assert choose_url(attrs, PAGE) == ("https://example.com/l.jpg", "data-lazy-srcset", None)


def test_first_reject_reason_when_nothing_usable():
    attrs = {"data-src": "mailto:x@example.com", "src": "data:image/png;base64,xx"}
    assert choose_url(attrs, PAGE) == (None, "", "unsupported_scheme")
    assert choose_url({"src": "data:image/png;base64,xx"}, PAGE) == (None, "", "data_uri")
    assert choose_url({"srcset": "javascript:x 2x"}, PAGE) == (None, "", "unsupported_scheme")
    assert choose_url({"alt": "no source at all"}, PAGE) == (None, "", "no_src")
    assert choose_url({"src": None}, PAGE) == (None, "", "no_src")


@pytest.mark.parametrize(
    ("srcset", "expected"),
    [
        ("a.jpg 320w, b.jpg 1024w, c.jpg 640w", "b.jpg"),
        ("a.jpg 1x, b.jpg 3x, c.jpg 2x", "b.jpg"),
        ("a.jpg, b.jpg 1.5x", "b.jpg"),  # no descriptor is 1x
        ("a.jpg 2x, b.jpg 10w", "b.jpg"),  # a width beats a density
        ("a.jpg 100w, b.jpg 100w", "a.jpg"),  # ties: the first
        ("only.jpg", "only.jpg"),
        ("a.jpg 1x,b.jpg 3x", "b.jpg"),  # no space after the comma
        ("a.jpg,b.jpg 2x", "a.jpg,b.jpg"),  # one URL: commas belong to a URL until whitespace
        ("a.jpg, b.jpg", "a.jpg"),  # a comma right after a URL ends that candidate
        ("a.jpg bogus, b.jpg 2x", "b.jpg"),
        ("\n  a.jpg 1x,\n  b.jpg 2x\n", "b.jpg"),
        ("", ""),
        (" , , ", ""),
        (
            "https://res.cloudinary.com/d/image/upload/w_400,h_300/a.jpg 400w, "
            "https://res.cloudinary.com/d/image/upload/w_800,h_600/a.jpg 800w",
            "https://res.cloudinary.com/d/image/upload/w_800,h_600/a.jpg",
        ),
    ],
)
def test_widest_candidate(srcset, expected):
    assert widest_candidate(srcset) == expected


# -- base URL --------------------------------------------------------------------------------


def test_base_href_is_used_and_resolved_against_the_page():
    html = '<base href="/sub/"><base href="https://other.example/"><img src=a.jpg alt=x>'
    assert candidates(html)[0].url == "https://example.com/sub/a.jpg"
    html = '<body><p>late</p><base href="https://cdn.example.org/r/"><img src=a.jpg alt=x></body>'
    assert candidates(html)[0].url == "https://cdn.example.org/r/a.jpg"


def test_base_without_href_or_unusable_falls_back_to_the_page():
    html = '<base target="_blank"><base href="javascript:void(0)"><img src=a.jpg alt=x>'
    assert candidates(html)[0].url == "https://example.com/a/a.jpg"
    assert candidates('<base href=""><img src=a.jpg alt=x>')[0].url == "https://example.com/a/a.jpg"


# -- declared size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1", 1), ("0", 0), (" 20px ", 20), ("640", 640), ("999999", 999999),
        ("1000000", None), ("100%", None), ("1.5", None), ("-1", None), ("auto", None),
        ("", None), ("²", None), ("١", None), (None, None),
    ],
)
def test_declared_dimensions(value, expected):
    attr = "" if value is None else f' width="{value}" height="{value}"'
    (c,) = candidates(f"<img src=a.jpg alt=x{attr}>")
    assert (c.width, c.height) == (expected, expected)
