"""Image candidates of an HTML page: every `<img>` the HTML parser sees, with its alt text.

Rules (see docs/extraction.md): the page is parsed as a browser with scripting off would
(lexbor), so `<img>` inside `<noscript>` counts, while `<img>` in comments, scripts and
`<template>` does not. The image URL of an `<img>` is, in this order, its first lazy-loading
attribute, its `src`, or the widest candidate of its `srcset`-like attributes.
`<picture><source>` is not used: its `<img>` is the fallback every browser can show.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from selectolax.lexbor import LexborHTMLParser

from laion_assets.pipeline.urls import UrlRejected, resolve

LAZY_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original", "data-lazy", "data-url")
SRCSET_ATTRIBUTES = ("srcset", "data-srcset", "data-lazy-srcset")


@dataclass(frozen=True, slots=True)
class ImageCandidate:
    """One `<img>`: its resolved URL (or why there is none) and its raw alt text."""

    url: str | None
    url_source: str
    reject_reason: str | None
    alt: str | None
    width: int | None
    height: int | None


def iter_image_candidates(html: str, page_url: str) -> Iterator[ImageCandidate]:
    """Every `<img>` of the page, in document order."""
    tree = LexborHTMLParser(html)
    base_url = _base_url(tree, page_url)
    for node in tree.css("img"):
        attrs = node.attributes
        url, source, reason = choose_url(attrs, base_url)
        yield ImageCandidate(
            url, source, reason, attrs.get("alt"), _dimension(attrs, "width"),
            _dimension(attrs, "height"),
        )


def choose_url(attrs: dict[str, str | None], base_url: str) -> tuple[str | None, str, str | None]:
    """(url, the attribute it came from, reject reason): lazy attributes, src, then srcset."""
    first_reason = None
    for name in (*LAZY_ATTRIBUTES, "src"):
        value = attrs.get(name)
        if value:
            try:
                return resolve(value, base_url), name, None
            except UrlRejected as exc:
                first_reason = first_reason or exc.reason
    for name in SRCSET_ATTRIBUTES:
        value = attrs.get(name)
        if value:
            try:
                return resolve(widest_candidate(value), base_url), name, None
            except UrlRejected as exc:
                first_reason = first_reason or exc.reason
    return None, "", first_reason or "no_src"


def widest_candidate(srcset: str) -> str:
    """The URL of the widest `srcset` candidate (by `w`, else by `x` density, else the first)."""
    best, best_size = "", -1.0
    for item in srcset.split(","):
        parts = item.split()
        if not parts:
            continue
        size = 0.0
        if len(parts) > 1 and parts[1][-1:] in ("w", "x"):
            try:
                size = float(parts[1][:-1]) * (1.0 if parts[1].endswith("w") else 1e-6)
            except ValueError:
                size = 0.0
        if size > best_size:
            best, best_size = parts[0], size
    return best


def _base_url(tree: LexborHTMLParser, page_url: str) -> str:
    base = tree.css_first("base[href]")
    href = base.attributes.get("href") if base is not None else None
    if not href:
        return page_url
    try:
        return resolve(href, page_url)
    except UrlRejected:
        return page_url


def _dimension(attrs: dict[str, str | None], name: str) -> int | None:
    value = (attrs.get(name) or "").strip().removesuffix("px")
    if value.isdigit() and len(value) < 7:
        return int(value)
    return None
