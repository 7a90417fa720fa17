"""Image candidates of an HTML page: every `<img>` the HTML parser sees, with its alt text.

Rules (see docs/extraction.md): the page is read as a browser with scripting off would, by
the streaming tokenizer of `html_tokens.py` (compiled, or its pure-Python twin: the same
output), which gives lexbor's `<img>` attributes and `<base href>` on every real page in
time linear in the page's bytes (a tree builder such as lexbor is quadratic in nesting
depth), so `<img>` inside `<noscript>` counts, while `<img>` in comments, scripts and
`<template>` does not. The image URL of an `<img>` is, in this order, its first
lazy-loading attribute, its `src`, or the widest candidate of its `srcset`-like attributes.
`<picture><source>` is not used: its `<img>` is the fallback every browser can show.
"""

from __future__ import annotations

from collections.abc import Iterator

from laion_assets.pipeline.formats.html_tokens import scan
from laion_assets.pipeline.formats.urls import (
    MAX_URL_CHARS,
    UrlRejected,
    ada_function_addresses,
    resolve,
    resolve_with_host,
)

LAZY_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
SRCSET_ATTRIBUTES = ("srcset", "data-srcset", "data-lazy-srcset")
_URL_ATTRIBUTES = (*LAZY_ATTRIBUTES, "src")
IMAGE_ATTRIBUTES = frozenset(
    ("alt", "src", "width", "height", *LAZY_ATTRIBUTES, *SRCSET_ATTRIBUTES)
)
_ASCII_WHITESPACE = " \t\n\r\x0c"
_SRCSET_SEPARATORS = _ASCII_WHITESPACE + ","


class ImageCandidate:
    """One `<img>`: its raw alt text, and its URL resolved on first use (most `<img>` are
    dropped for their alt text first, so most never pay for URL resolution)."""

    __slots__ = ("attrs", "base_url", "_choice")

    def __init__(self, attrs: dict[str, str | None], base_url: str) -> None:
        self.attrs, self.base_url = attrs, base_url
        self._choice: tuple[str | None, str, str | None] | None = None

    @property
    def alt(self) -> str | None:
        return raw_alt(self.attrs)

    @property
    def url(self) -> str | None:
        return self._chosen()[0]

    @property
    def url_source(self) -> str:
        return self._chosen()[1]

    @property
    def reject_reason(self) -> str | None:
        return self._chosen()[2]

    @property
    def width(self) -> int | None:
        return dimension(self.attrs, "width")

    @property
    def height(self) -> int | None:
        return dimension(self.attrs, "height")

    def _chosen(self) -> tuple[str | None, str, str | None]:
        if self._choice is None:
            self._choice = choose_url(self.attrs, self.base_url)
        return self._choice


def iter_image_candidates(html: str | bytes, page_url: str) -> Iterator[ImageCandidate]:
    """Every `<img>` of the page, in document order (`bytes` are read as UTF-8)."""
    base_url, images = image_attributes(html, page_url)
    for attrs in images:
        yield ImageCandidate(attrs, base_url)


def image_attributes(html: str | bytes, page_url: str) -> tuple[str, list[dict]]:
    """(base URL, the attributes in `IMAGE_ATTRIBUTES` of every `<img>` in document order):
    the extraction hot path reads these directly; `iter_image_candidates` wraps them."""
    href, images = scan(html, IMAGE_ATTRIBUTES)
    return _resolved_base(href, page_url), images


def raw_alt(attrs: dict[str, str | None]) -> str | None:
    """The alt attribute as written: None when missing, "" for a bare `alt` (no "=")."""
    alt = attrs.get("alt")
    if alt is None and "alt" in attrs:
        return ""
    return alt


def choose_url(attrs: dict[str, str | None], base_url: str) -> tuple[str | None, str, str | None]:
    """(url, the attribute it came from, reject reason): lazy attributes, src, then srcset."""
    url, _, source, reason = choose_url_host(attrs, base_url)
    return url, source, reason


def choose_url_host(attrs: dict[str, str | None],
                    base_url: str) -> tuple[str | None, str, str, str | None]:
    """`choose_url` with the URL's host as its second item ("" when there is no URL)."""
    found = _first_url(attrs, _URL_ATTRIBUTES, base_url) if _first_url is not None else None
    if found is None:  # not compiled, or a value the compiled loop leaves to Python
        found = first_url(attrs, _URL_ATTRIBUTES, base_url)
    if found[0] is not None:
        return found
    first_reason = found[3]
    for name in SRCSET_ATTRIBUTES:
        value = attrs.get(name)
        if value:
            try:
                return *resolve_with_host(widest_candidate(value), base_url), name, None
            except UrlRejected as exc:
                first_reason = first_reason or exc.reason
    return None, "", "", first_reason or "no_src"


def first_url(attrs: dict[str, str | None], names: tuple[str, ...],
              base_url: str) -> tuple[str | None, str, str, str | None]:
    """(url, host, attribute, None) for the first of `names` whose value resolves, else
    (None, "", "", the first reject reason or None). `_html_scan.first_url` is its twin."""
    first_reason = None
    for name in names:
        value = attrs.get(name)
        if value:
            try:
                return *resolve_with_host(value, base_url), name, None
            except UrlRejected as exc:
                first_reason = first_reason or exc.reason
    return None, "", "", first_reason


def widest_candidate(srcset: str) -> str:
    """The URL of the widest `srcset` candidate (by `w`, else by `x` density, else the first).

    Candidates are split as the HTML standard does: a URL is a run of non-whitespace (it may
    hold commas, as CDN URLs like `/w_400,h_300/a.jpg` do) and its descriptors run to the
    next comma.
    """
    best, best_size = "", -1.0
    for url, descriptors in _srcset_candidates(srcset):
        size = 0.0
        parts = descriptors.split()
        if parts and parts[0][-1:] in ("w", "x"):
            try:
                size = float(parts[0][:-1]) * (1.0 if parts[0].endswith("w") else 1e-6)
            except ValueError:
                size = 0.0
        if size > best_size:
            best, best_size = url, size
    return best


def _srcset_candidates(srcset: str) -> Iterator[tuple[str, str]]:
    """(url, descriptors) of each candidate, per the standard's srcset parsing (simplified)."""
    pos, end = 0, len(srcset)
    while True:
        while pos < end and srcset[pos] in _SRCSET_SEPARATORS:
            pos += 1
        if pos >= end:
            return
        url_end = pos
        while url_end < end and srcset[url_end] not in _ASCII_WHITESPACE:
            url_end += 1
        url, pos = srcset[pos:url_end], url_end
        if url.endswith(","):  # "a.jpg, b.jpg 2x": a comma right after the URL ends it
            yield url.rstrip(","), ""
            continue
        comma = srcset.find(",", pos)
        comma = end if comma < 0 else comma
        yield url, srcset[pos:comma]
        pos = comma + 1


def _resolved_base(href: str | None, page_url: str) -> str:
    if not href:
        return page_url
    try:
        return resolve(href, page_url)
    except UrlRejected:
        return page_url


def dimension(attrs: dict[str, str | None], name: str) -> int | None:
    value = attrs.get(name)
    if not value:
        return None
    if value.isdigit() and value.isascii():  # the common case, "640"
        return int(value) if len(value) < 7 else None
    value = value.strip().removesuffix("px")
    if value.isascii() and value.isdigit() and len(value) < 7:  # "²".isdigit() is True
        return int(value)
    return None


try:  # the lazy-attribute/src loop in C, with ada's own functions (`_html_scan.first_url`)
    from laion_assets.pipeline.formats import _html_scan
except ImportError:  # pragma: no cover - a machine without a C compiler
    _first_url = None
else:
    _html_scan.bind_ada(*ada_function_addresses(), MAX_URL_CHARS)
    _first_url = _html_scan.first_url
