"""Resolving and normalising image URLs (docs/extraction.md, "URL normalisation")."""

from __future__ import annotations

import pytest

from laion_assets.pipeline.formats.urls import (
    MAX_URL_CHARS,
    UrlRejected,
    domain_of,
    normalize,
    resolve,
    resolve_with_host,
)

BASE = "https://www.example.com/dir/page.html?q=1"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("img/a.jpg", "https://www.example.com/dir/img/a.jpg"),
        ("./img/a.jpg", "https://www.example.com/dir/img/a.jpg"),
        ("../a.jpg", "https://www.example.com/a.jpg"),
        ("../../../../a.jpg", "https://www.example.com/a.jpg"),  # RFC 3986: no climbing above /
        ("/abs/a.jpg", "https://www.example.com/abs/a.jpg"),
        ("//cdn.example.net/x.png", "https://cdn.example.net/x.png"),  # scheme-relative
        ("?x=1", "https://www.example.com/dir/page.html?x=1"),
        ("#top", "https://www.example.com/dir/page.html?q=1"),  # fragment dropped
        ("http://other.example/a.jpg", "http://other.example/a.jpg"),
    ],
)
def test_resolves_against_the_base(raw, expected):
    assert resolve(raw, BASE) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://EXAMPLE.com/A.JPG", "http://example.com/A.JPG"),  # scheme, host lower; path not
        ("http://example.com:80/a.jpg", "http://example.com/a.jpg"),
        ("https://example.com:443/a.jpg", "https://example.com/a.jpg"),
        ("http://example.com:443/a.jpg", "http://example.com:443/a.jpg"),
        ("https://example.com:8443/a.jpg", "https://example.com:8443/a.jpg"),
        ("http://example.com./a.jpg", "http://example.com/a.jpg"),  # trailing dot of the host
        ("http://example.com", "http://example.com/"),  # empty path is "/"
        ("https://bücher.example/bild.jpg", "https://xn--bcher-kva.example/bild.jpg"),  # IDNA
        ("/a b.jpg", "https://www.example.com/a%20b.jpg"),
        ("/café.jpg", "https://www.example.com/caf%C3%A9.jpg"),
        ("/%E2%82%AC.jpg", "https://www.example.com/%E2%82%AC.jpg"),  # escapes kept as they are
        ("/a.jpg?w=1&h=a b|c", "https://www.example.com/a.jpg?w=1&h=a%20b|c"),  # WHATWG query set
        ("/a.jpg?ord=[ts]", "https://www.example.com/a.jpg?ord=[ts]"),
        ("http:///a.jpg", "http://a.jpg/"),  # as browsers read it: the host is "a.jpg"
        ("/a.jpg?next=/b?c", "https://www.example.com/a.jpg?next=/b?c"),
        ("/p;v=1/a:b@c!$&'()*+,=~.jpg", "https://www.example.com/p;v=1/a:b@c!$&'()*+,=~.jpg"),
        ('/x"<>{}^`.jpg', "https://www.example.com/x%22%3C%3E%7B%7D%5E%60.jpg"),
    ],
)
def test_normalisation(raw, expected):
    assert resolve(raw, BASE) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  /pad.jpg \x0c", "https://www.example.com/pad.jpg"),  # surrounding whitespace
        ("/a\tb\nc\r.jpg", "https://www.example.com/abc.jpg"),  # tab, LF, CR removed anywhere
        ("..\\img\\a.jpg", "https://www.example.com/img/a.jpg"),  # "\" is "/" as in browsers
        ("\\\\cdn.example.net\\a.jpg", "https://cdn.example.net/a.jpg"),
        ("/a.jpg?path=c:\\x", "https://www.example.com/a.jpg?path=c:\\x"),  # kept in the query
    ],
)
def test_what_browsers_forgive(raw, expected):
    assert resolve(raw, BASE) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", "no_src"),
        ("  \t\n ", "no_src"),
        ("data:image/png;base64,iVBORw0KGgo=", "data_uri"),
        ("  DATA:image/gif,xyz", "data_uri"),
        ("javascript:void(0)", "unsupported_scheme"),
        ("JavaScript:alert(1)", "unsupported_scheme"),
        ("mailto:someone@example.com", "unsupported_scheme"),
        ("ftp://example.com/a.jpg", "unsupported_scheme"),
        ("blob:https://example.com/1234", "unsupported_scheme"),
        ("http://[::1/a.jpg", "invalid_url"),
        ("http://exa mple.com/a.jpg", "invalid_url"),
        ("http://example.com:99999/a.jpg", "invalid_url"),
        ("http://user:secret@example.com/a.jpg", "credentials_in_url"),
        ("http://[::1]:80:/a.jpg", "invalid_url"),
        ("/" + "a" * MAX_URL_CHARS, "url_too_long"),
    ],
)
def test_rejections_carry_the_drop_reason(raw, reason):
    with pytest.raises(UrlRejected) as info:
        resolve(raw, BASE)
    assert info.value.reason == reason


def test_longest_allowed_url():
    prefix = "https://www.example.com/"
    url = prefix + "a" * (MAX_URL_CHARS - len(prefix))
    assert normalize(url) == url
    with pytest.raises(UrlRejected):
        normalize(url + "a")


def test_normalize_is_idempotent():
    for raw in ("/a b/café.jpg?x=ü&y=1", "//bücher.example:80/x", "../q?a=%20"):
        once = resolve(raw, BASE)
        assert normalize(once) == once


def test_domain_of():
    assert domain_of("https://xn--bcher-kva.example:8443/bild.jpg") == "xn--bcher-kva.example"
    assert domain_of(resolve("//CDN.Example.net/x.png", BASE)) == "cdn.example.net"


@pytest.mark.parametrize(
    "value",
    ["a.jpg", "", " ", "\t/x\n", "\\\\evil.com/x", "http://[::1", "https://ex%41mple.com/",
     "//xn--nxasmq6b.com/", "http://1.2.3/", "ü.png?q=ä#f", "\ud800", "javascript:x",
     "https://a@b/", "http://EXAMPLE.com:80/./a/../b", "../../../../x", "?q", "#frag"],
)
def test_join_url_is_ada_join_url(value):
    """The lean binding gives what ada-url's own `join_url` gives, errors included."""
    import ada_url

    from laion_assets.pipeline.formats.urls import join_url

    def outcome(join):
        try:
            return join(BASE, value)
        except ValueError:
            return "ValueError"

    assert outcome(join_url) == outcome(ada_url.join_url)


@pytest.mark.parametrize(
    "raw",
    ["img/a.jpg", "//CDN.Example.net/x.png", "http://example.com./a.jpg",
     "https://bücher.example:8443/bild.jpg", "http://[::1]:8080/a.png", "http://a.:81/b",
     "https://example.com:443/a.jpg#f"],
)
def test_resolve_with_host_gives_the_url_and_its_domain(raw):
    """The extraction hot path takes the host from the resolution instead of re-reading it."""
    url = resolve(raw, BASE)
    assert resolve_with_host(raw, BASE) == (url, domain_of(url))
