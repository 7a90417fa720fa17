"""Resolve image URLs against their page and normalise them, as a browser does.

Resolution and normalisation follow the WHATWG URL standard (through `ada-url`, a compiled
parser ~5x faster than `urllib.parse` here): tabs and newlines are removed, `\\` reads as `/`,
scheme and host are lower-cased, hosts are IDNA-encoded, default ports and dot segments go,
and what must be percent-encoded is. The fragment is dropped; only http(s) URLs are kept.
"""

from __future__ import annotations

from ada_url._ada_wrapper import ffi, lib

MAX_URL_CHARS = 2048
_SCHEMES = ("http://", "https://")
_SPACES = " \t\n\r\x0c"
_parse_with_base, _is_valid, _get_href = lib.ada_parse_with_base, lib.ada_is_valid, lib.ada_get_href
_free, _unpack = lib.ada_free, ffi.unpack


class UrlRejected(ValueError):
    """A URL that cannot become a pair; `reason` is the drop reason."""

    def __init__(self, reason: str, url: str) -> None:
        super().__init__(f"{reason}: {url[:200]}")
        self.reason = reason


def resolve(raw: str, base: str) -> str:
    """Resolve `raw` (an attribute value) against `base`, then normalise; raises UrlRejected."""
    return resolve_with_host(raw, base)[0]


def resolve_with_host(raw: str, base: str) -> tuple[str, str]:
    """`resolve`, and the URL's host (`domain_of` of it), found on the way."""
    value = raw.strip(_SPACES)
    if not value:
        raise UrlRejected("no_src", raw)
    if value[:5].lower() == "data:":
        raise UrlRejected("data_uri", value[:64])
    try:
        absolute = join_url(base, value)
    except ValueError as exc:
        raise UrlRejected("invalid_url", value) from exc
    return _checked(absolute, value)


def normalize(url: str) -> str:
    """Normalise an absolute URL (see the module docstring); raises UrlRejected."""
    try:
        absolute = join_url(url, "")
    except ValueError as exc:
        raise UrlRejected("invalid_url", url) from exc
    return _checked(absolute, url)[0]


def join_url(base: str, value: str) -> str:
    """`ada_url.join_url` without its adapter's per-call overhead (a garbage-collected handle
    and a buffer copy): the same C calls, the same result; raises ValueError."""
    try:
        value_bytes, base_bytes = value.encode(), base.encode()
    except UnicodeEncodeError:
        raise ValueError("Invalid URL") from None
    url = _parse_with_base(value_bytes, len(value_bytes), base_bytes, len(base_bytes))
    try:
        if not _is_valid(url):
            raise ValueError("Invalid URL")
        href = _get_href(url)
        length = href.length
        return _unpack(href.data, length).decode() if length else ""
    finally:
        _free(url)


def _checked(absolute: str, original: str) -> tuple[str, str]:
    """(the URL without its fragment, its host) or UrlRejected."""
    if not absolute.startswith(_SCHEMES):
        raise UrlRejected("unsupported_scheme", original)
    cut = absolute.find("#")
    out = absolute if cut < 0 else absolute[:cut]
    start = out.find("//") + 2
    slash = out.find("/", start)
    authority = out[start:] if slash < 0 else out[start:slash]
    if "@" in authority:  # published credentials would leak; fetchers refuse them too
        raise UrlRejected("credentials_in_url", original)
    host = _host(authority)
    if host.endswith("."):  # "example.com." names the same host as "example.com"
        out = out.replace(f"//{host}", f"//{host.rstrip('.')}", 1)
        host = host.rstrip(".")
    if not host:
        raise UrlRejected("invalid_url", original)
    if len(out) > MAX_URL_CHARS:
        raise UrlRejected("url_too_long", original)
    return out, host


def _authority(url: str) -> str:
    start = url.find("//") + 2
    end = url.find("/", start)
    return url[start:] if end < 0 else url[start:end]


def ada_function_addresses() -> tuple[int, int, int, int]:
    """Addresses of ada's `parse_with_base`, `is_valid`, `get_href` and `free`, for compiled
    code that resolves URLs with the same functions (`_html_scan.first_url`)."""
    names = ("ada_parse_with_base", "ada_is_valid", "ada_get_href", "ada_free")
    return tuple(int(ffi.cast("uintptr_t", ffi.addressof(lib, name))) for name in names)


def domain_of(url: str) -> str:
    """The host of a normalised http(s) URL (for statistics and domain rules)."""
    return _host(_authority(url))


def _host(authority: str) -> str:
    if authority.startswith("["):
        return authority[: authority.find("]") + 1]
    return authority.rsplit(":", 1)[0] if ":" in authority else authority
