"""Resolve image URLs against their page and normalise them (http and https only)."""

from __future__ import annotations

import re
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

MAX_URL_CHARS = 2048
DEFAULT_PORTS = {"http": "80", "https": "443"}
_STRIPPED = re.compile(r"[\t\n\r]")  # the URL standard removes these anywhere in a URL
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"


class UrlRejected(ValueError):
    """A URL that cannot become a pair; `reason` is the drop reason."""

    def __init__(self, reason: str, url: str) -> None:
        super().__init__(f"{reason}: {url[:200]}")
        self.reason = reason


def resolve(raw: str, base: str) -> str:
    """Resolve `raw` (an attribute value) against `base`, then normalise; raises UrlRejected."""
    value = _STRIPPED.sub("", raw).strip(" \x0c")
    if not value:
        raise UrlRejected("no_src", raw)
    head = value[:11].lower()
    if head.startswith("data:"):
        raise UrlRejected("data_uri", value[:64])
    # browsers read "\" as "/" before the query in http(s) URLs ("..\img\a.jpg"); urljoin does not
    split = re.search(r"[?#]", value)
    end = split.start() if split else len(value)
    value = value[:end].replace("\\", "/") + value[end:]
    try:
        absolute = urljoin(base, value)
    except ValueError as exc:
        raise UrlRejected("invalid_url", value) from exc
    return normalize(absolute)


def normalize(url: str) -> str:
    """Lower-case scheme and host, IDNA host, drop default port and fragment, escape the rest."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlRejected("invalid_url", url) from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRejected("unsupported_scheme", url)
    host = _host(parts.hostname or "", url)
    netloc = host if port is None or str(port) == DEFAULT_PORTS[scheme] else f"{host}:{port}"
    path = quote(parts.path or "/", safe=_SAFE_PATH)
    query = quote(parts.query, safe=_SAFE_QUERY)
    out = urlunsplit((scheme, netloc, path, query, ""))
    if len(out) > MAX_URL_CHARS:
        raise UrlRejected("url_too_long", url)
    return out


def _host(hostname: str, url: str) -> str:
    host = hostname.rstrip(".").lower()
    if not host or " " in host:
        raise UrlRejected("invalid_url", url)
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise UrlRejected("invalid_url", url) from exc


def domain_of(url: str) -> str:
    """The host of a normalised URL (for statistics and domain rules)."""
    return urlsplit(url).hostname or ""
