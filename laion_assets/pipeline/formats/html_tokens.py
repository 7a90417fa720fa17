"""A streaming HTML tokenizer for `<img>`/`<image>` attributes and the first `<base href>`.

No tree is built, so the time is linear in the page's bytes whatever its structure (a tree
builder such as lexbor is quadratic in nesting depth). The scan follows the tokenizer
states of the HTML standard that decide where a tag is: comments (`<!-->`, `--!>`, a
comment open at the end runs to the end), bogus comments and doctypes, attribute quoting
(a `>` inside a quoted value does not end the tag; a tag open at the end is dropped),
RAWTEXT (`style`, `xmp`, `iframe`, `noembed`, `noframes`), RCDATA (`textarea`, `title`),
script data with its escaped and double-escaped states, `plaintext`, `<template>` content
(not part of the document), and SVG/MathML foreign content (where `<image>` is SVG's,
`<img>` and the other breakout tags leave it, CDATA sections are text, and
`foreignObject`/`desc`/`title`/`mi`…`mtext` hold HTML again). Scripting is off, as in
the extraction rules: `<noscript>` content is markup.

Names are ASCII-case-insensitive; the first of duplicate attributes wins; character
references in values are decoded as in an attribute (the standard's rule: a legacy named
reference without `;` followed by `=` or an alphanumeric is left as written), NUL becomes
U+FFFD and CR/CRLF become LF, as the standard's input stream does. A bare attribute (no
`=`) has the value None, as selectolax gives it. Pages given as bytes are scanned as bytes
and only the attributes of the tags found are decoded (UTF-8, invalid bytes replaced).

`scan` runs the same scanner compiled (`_html_scan.c`, built on install) when it is there,
this module's pure-Python one (`python_scan`) otherwise: the same output (tested both ways).
"""

from __future__ import annotations

import re
from html import unescape
from html.entities import html5

_WS = r"\t\n\f\r "
_ATTRS = (  # the attributes of a tag up to its `>`, as the tokenizer reads them
    rf"(?>[{_WS}/]++|[^{_WS}/>][^{_WS}/>=]*+"
    rf"(?>[{_WS}]*+=[{_WS}]*+(?>\"[^\"]*+(?>\"|\Z)|'[^']*+(?>'|\Z)|[^{_WS}>]*+))?+)*+"
)  # a quote left open runs to the end of the page: the tag is then never closed
_ATTR = re.compile(
    rf"[{_WS}/]*+([^{_WS}/>][^{_WS}/>=]*+)"
    rf"(?:[{_WS}]*+=[{_WS}]*+(\"[^\"]*+\"|'[^']*+'|[^{_WS}>]*+))?+"
)  # (name, value as written: quoted, unquoted, or "" when absent or empty, as lexbor)
_RAWTEXT = ("style", "xmp", "iframe", "noembed", "noframes", "textarea", "title")
_START = ("img", "image", "base", "script", "plaintext", "template", "svg", "math", *_RAWTEXT)
_END = ("template", "foreignobject", "desc", "title", "mi", "mo", "mn", "ms", "mtext",
        "annotation-xml")
_BREAKOUT = frozenset((  # start tags that close open SVG/MathML elements
    "b", "big", "blockquote", "body", "br", "center", "code", "dd", "div", "dl", "dt", "em",
    "embed", "h1", "h2", "h3", "h4", "h5", "h6", "head", "hr", "i", "img", "li", "listing",
    "menu", "meta", "nobr", "ol", "p", "pre", "ruby", "s", "small", "span", "strong", "strike",
    "sub", "sup", "table", "tt", "u", "ul", "var",
))
_SVG_HTML_POINTS = frozenset(("foreignobject", "desc", "title"))
_MATH_TEXT_POINTS = frozenset(("mi", "mo", "mn", "ms", "mtext"))
_HTML_ENCODINGS = ("text/html", "application/xhtml+xml")
_FLAGS = re.ASCII | re.IGNORECASE


def _names(names: tuple[str, ...] | list[str]) -> str:
    """An alternation of `names` as a trie (`s(?:cript|tyle|vg)`): a tag fails it on its
    first letters, which keeps the per-tag cost of the skip loop low."""
    heads: dict[str, list[str]] = {}
    for name in sorted(set(names)):
        heads.setdefault(name[0], []).append(name[1:])
    parts = []
    for head, tails in heads.items():
        rest = [t for t in tails if t]
        inner = _names(rest) if rest else ""
        optional = "?" if "" in tails else ""
        parts.append(f"{re.escape(head)}(?:{inner}){optional}" if rest else re.escape(head))
    return "|".join(parts)


def _raw_skip(name: str, stop: str = "") -> str:
    """An element of raw text passed over whole, start tag to end tag (no capturing group:
    sre mishandles one inside a possessive repeat)."""
    return (rf"|<{name}(?=[{_WS}/>]){_ATTRS}>"
            rf"(?:[^<]++|<(?!/{name}[{_WS}/>]{stop}))*+</{name}(?=[{_WS}/>]){_ATTRS}>")


# RAWTEXT/RCDATA elements, and scripts without "<!--" (their escape states go to Python)
_RAW_SKIP = "".join(_raw_skip(name) for name in _RAWTEXT) + _raw_skip("script", "|!--")


def _skip_items(interesting_start: str, interesting_end: str) -> str:
    """Tokens the scan passes over in C: text, comments, doctypes, raw text elements, and
    the tags that do not change the state (their attributes are read through, so quotes
    are honoured)."""
    return (
        rf"(?>[^<]++"
        rf"|<!--(?>-?>|(?s:.*?)(?>--!?>|\Z))"
        rf"|<[!?][^>]*+(?>>|\Z)"
        rf"|</>"
        rf"|</(?![A-Za-z])[^>]++(?>>|\Z)"
        rf"|</(?!(?:{interesting_end})[{_WS}/>])[A-Za-z][^{_WS}/>]*+{_ATTRS}>"
        rf"{_RAW_SKIP}"
        rf"|<(?!(?:{interesting_start})[{_WS}/>])[A-Za-z][^{_WS}/>]*+{_ATTRS}>"
        rf"|<(?![A-Za-z/!?])"
        rf"|</\Z"
        rf")*+"
    )


_NEXT_TEMPLATE = (  # skip to the next interesting tag: (1) "/" for an end tag, (2) name, (3) attrs
    "{skip}<(/?)({names})(?=[" + _WS + "/>])(" + _ATTRS + ")>"
)
_HTML_NEXT = _NEXT_TEMPLATE.format(  # HTML content
    skip=_skip_items(_names(_START), "template"), names=_names(_START + ("template",))
)
_POINT_NEXT = _NEXT_TEMPLATE.format(  # HTML inside an SVG/MathML integration point
    skip=_skip_items(_names(_START), _names(_END)), names=_names(_START + _END)
)
_TOKEN = (  # one token of foreign content: CDATA sections are text there
    r"(?>[^<]++|<!\[CDATA\[(?s:.*?)(?>\]\]>|\Z)"
    r"|<!--(?>-?>|(?s:.*?)(?>--!?>|\Z))|<[!?][^>]*+(?>>|\Z)|</>|</(?![A-Za-z])[^>]++(?>>|\Z)"
    r"|<(?![A-Za-z/!?])|</\Z)*+"
    rf"<(/?)([A-Za-z][^{_WS}/>]*+)({_ATTRS})>"
)


class _Patterns:
    """The scanner's regular expressions, compiled for `str` or for `bytes` pages."""

    def __init__(self, kind: type) -> None:
        def c(pattern: str, flags: int = _FLAGS) -> re.Pattern:
            return re.compile(pattern if kind is str else pattern.encode(), flags)

        self.html_next = c(_HTML_NEXT)
        self.point_next = c(_POINT_NEXT)
        self.foreign_next = c(_TOKEN)
        self.script_marks = c(rf"<!---*+>|<!--|-->|<(/?)script(?=[{_WS}/>])")
        self.end_tag_rest = c(rf"{_ATTRS}>")
        self.raw_end = {n: c(rf"</{n}(?=[{_WS}/>])") for n in (*_RAWTEXT, "script")}
        self.empty = "" if kind is str else b""


_STR, _BYTES = _Patterns(str), _Patterns(bytes)


def scan(
    page: str | bytes, wanted: frozenset[str] | None = None
) -> tuple[str | None, list[dict[str, str | None]]]:
    """(the href of the first `<base href>`, or None; the attributes of every `<img>` and
    `<image>` in document order, only the `wanted` ones when given), in time linear in the
    page's length: by the compiled scanner when it is built, else by `python_scan`."""
    if _compiled is not None:
        found = _compiled.scan(page, wanted)
        if found is not None:  # None: a str with lone surrogates, or unusual wanted names
            return found
    return _Scanner(page, wanted).run()


def python_scan(
    page: str | bytes, wanted: frozenset[str] | None = None
) -> tuple[str | None, list[dict[str, str | None]]]:
    """`scan` in pure Python (the fallback where the extension is not built)."""
    return _Scanner(page, wanted).run()


def compiled_scan(
    page: str | bytes, wanted: frozenset[str] | None = None
) -> tuple[str | None, list[dict[str, str | None]]] | None:
    """`scan` by the compiled extension only (None where it defers to Python); raises
    ImportError when the extension is not built."""
    if _compiled is None:
        raise ImportError("laion_assets.pipeline.formats._html_scan is not built")
    return _compiled.scan(page, wanted)


class _Scanner:
    __slots__ = ("page", "p", "pos", "images", "base", "template_depth", "foreign", "read")

    def __init__(self, page: str | bytes, wanted: frozenset[str] | None) -> None:
        self.read = attributes if wanted is None else _Picker.of(wanted).pick
        self.page, self.p = page, (_BYTES if isinstance(page, bytes | bytearray) else _STR)
        self.pos, self.template_depth = 0, 0
        self.images: list[dict[str, str | None]] = []
        self.base: str | None = None
        # open SVG/MathML elements: (name, namespace, holds HTML); empty: HTML content
        self.foreign: list[tuple[str, str, bool]] = []

    def run(self) -> tuple[str | None, list[dict[str, str | None]]]:
        while self.pos < len(self.page):
            if self.foreign and not self.foreign[-1][2]:
                found = self.p.foreign_next.match(self.page, self.pos)
                if found is None:
                    break
                self._foreign_tag(found)
            else:
                pattern = self.p.point_next if self.foreign else self.p.html_next
                found = pattern.match(self.page, self.pos)
                if found is None:
                    break
                self.pos = found.end()
                self._html_tag(found)
        return self.base, self.images

    # -- HTML content ----------------------------------------------------------------------

    def _html_tag(self, found: re.Match) -> None:
        name = _lower(found.group(2))
        if found.group(1):  # an end tag
            self._html_end_tag(name)
            return
        if name in ("img", "image"):
            if not self.template_depth:
                self.images.append(self.read(found.group(3)))
        elif name == "base":
            self._base(found.group(3))
        elif name == "script":
            self.pos = self._script_end(self.pos)
        elif name == "plaintext":
            self.pos = len(self.page)
        elif name == "template":
            self.template_depth += 1
        elif name in ("svg", "math"):
            if not _self_closing(found.group(3)):
                self.foreign.append((name, name, False))
        elif name in _RAWTEXT:  # RAWTEXT and RCDATA: to the matching end tag
            self.pos = self._raw_end(name, self.pos)

    def _html_end_tag(self, name: str) -> None:
        if name == "template":
            self.template_depth = max(0, self.template_depth - 1)
        elif self.foreign and self.foreign[-1][0] == name:  # an integration point closes
            self.foreign.pop()

    def _base(self, attrs: str | bytes) -> None:
        if self.base is None and not self.template_depth:
            href = _HREF.pick(attrs).get("href", False)
            if href is not False:
                self.base = href or ""

    def _raw_end(self, name: str, start: int) -> int:
        end = self.p.raw_end[name].search(self.page, start)
        return len(self.page) if end is None else self._end_tag_rest(end.end())

    def _end_tag_rest(self, pos: int) -> int:
        rest = self.p.end_tag_rest.match(self.page, pos)
        return len(self.page) if rest is None else rest.end()

    def _script_end(self, start: int) -> int:
        """Script data: `</script>` ends it, except inside `<!--<script>…</script>-->`."""
        end = self.p.raw_end["script"].search(self.page, start)
        if end is None:
            return len(self.page)
        if self.page.find(b"<!--" if self.p is _BYTES else "<!--", start, end.start()) < 0:
            return self._end_tag_rest(end.end())
        state = "data"  # data, escaped, double (escaped)
        for mark in self.p.script_marks.finditer(self.page, start):
            text, closing = mark.group(0), mark.group(1)
            if text[:4] in ("<!--", b"<!--"):  # "<!-->" and "<!--->" open and close
                ended = text[-1:] in (">", b">")
                state = "data" if ended else ("escaped" if state == "data" else state)
            elif text[:3] in ("-->", b"-->"):
                state = "data"
            elif closing:
                if state != "double":
                    return self._end_tag_rest(mark.end())
                state = "escaped"
            elif state == "escaped":
                state = "double"
        return len(self.page)

    # -- foreign content (SVG, MathML) -----------------------------------------------------

    def _foreign_tag(self, found: re.Match) -> None:
        name, attrs = _lower(found.group(2)), found.group(3)
        if found.group(1):
            if name in ("br", "p"):
                self._leave_foreign(found.start(2) - 2)
            else:
                self._foreign_end(name)
                self.pos = found.end()
            return
        if name in _BREAKOUT or (name == "font" and _font_breaks_out(attrs)):
            self._leave_foreign(found.start(2) - 1)
            return
        self.pos = found.end()
        if name == "base":
            self._base(attrs)
        if _self_closing(attrs):
            return
        namespace = self.foreign[-1][1]
        holds_html = (namespace == "svg" and name in _SVG_HTML_POINTS) or (
            namespace == "math" and (name in _MATH_TEXT_POINTS or (
                name == "annotation-xml" and _html_encoding(attrs)))
        )
        self.foreign.append((name, namespace, holds_html))

    def _foreign_end(self, name: str) -> None:
        for depth in range(len(self.foreign) - 1, -1, -1):
            if self.foreign[depth][0] == name:
                del self.foreign[depth:]
                return
            if self.foreign[depth][2]:
                return

    def _leave_foreign(self, tag_start: int) -> None:
        """A breakout tag closes the open foreign elements and is read again as HTML."""
        while self.foreign and not self.foreign[-1][2]:
            self.foreign.pop()
        self.pos = tag_start


def attributes(text: str | bytes) -> dict[str, str | None]:
    """The attributes of a tag (the text after its name), first occurrence winning."""
    if isinstance(text, bytes | bytearray):
        text = text.decode("utf-8", "replace")
    if "\r" in text or "\x00" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
    found = _ATTR.findall(text)
    names = [name for name, _ in found]
    joined = "\x00".join(names)
    if joined.isascii():  # one call lower-cases every name (ASCII only, as the standard)
        names = joined.lower().split("\x00") if names else []
    else:
        names = [_lower(name) for name in names]
    values = [_value(written) for _, written in found]
    attrs = dict(zip(names, values, strict=True))
    if len(attrs) < len(names):  # duplicates: the first occurrence wins, in document order
        first = dict(zip(reversed(names), reversed(values), strict=True))
        attrs = {name: first[name] for name in attrs}
    return attrs


def _value(written: str | None) -> str | None:
    """An attribute's value from its text as written; None for a bare or empty unquoted one
    (lexbor's reading: `alt` and `alt= >` have no value, `alt=""` an empty one)."""
    if not written:
        return None
    if written[0] in "\"'":
        written = written[1:-1]
    return decode_attribute_value(written) if "&" in written else written


class _Picker:
    """Reads only some attributes of a tag: the others are passed over inside the regular
    expression, so a tag with a million attributes costs one C-level scan, not a million
    Python objects."""

    _cache: dict[frozenset[str], _Picker] = {}

    def __init__(self, wanted: frozenset[str]) -> None:
        names = _names(sorted(wanted))
        self.next = re.compile(
            rf"(?:[{_WS}/]++|(?!(?:{names})(?:[{_WS}/>=]|\Z))[^{_WS}/>][^{_WS}/>=]*+"
            rf"(?>[{_WS}]*+=[{_WS}]*+(?>\"[^\"]*+\"|'[^']*+'|[^{_WS}>]*+))?+)*+"
            rf"({names})(?=[{_WS}/>=]|\Z)"
            rf"(?:[{_WS}]*+=[{_WS}]*+(\"[^\"]*+\"|'[^']*+'|[^{_WS}>]*+))?+",
            _FLAGS,
        )

    @classmethod
    def of(cls, wanted: frozenset[str]) -> _Picker:
        picker = cls._cache.get(wanted)
        if picker is None:
            picker = cls._cache[wanted] = cls(wanted)
        return picker

    def pick(self, text: str | bytes) -> dict[str, str | None]:
        if isinstance(text, bytes | bytearray):
            text = text.decode("utf-8", "replace")
        if "\r" in text or "\x00" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")
        found: dict[str, str | None] = {}
        pos, match = 0, self.next.match
        while (m := match(text, pos)) is not None:
            pos = m.end()
            name = m.group(1).lower()
            if name not in found:
                found[name] = _value(m.group(2))
        return found


_HREF = _Picker.of(frozenset(("href",)))
_CHARREF = re.compile(r"&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)")


def decode_attribute_value(value: str) -> str:
    """Character references decoded as in an attribute value (see the module docstring)."""
    return _CHARREF.sub(_charref, value)


def _charref(match: re.Match) -> str:
    ref = match.group(1)
    if ref[0] == "#" or ref in html5:
        return unescape(match.group(0))
    for cut in range(len(ref) - 1, 0, -1):  # the longest legacy name it starts with
        if ref[:cut] in html5:
            following = ref[cut]
            if following == "=" or following.isascii() and following.isalnum():
                return match.group(0)
            return html5[ref[:cut]] + ref[cut:]
    return match.group(0)


def _lower(name: str | bytes) -> str:
    if isinstance(name, bytes | bytearray):
        name = name.decode("utf-8", "replace")
    return (name.lower() if name.isascii() else _ascii_lower(name)).replace("\x00", "\ufffd")


def _ascii_lower(name: str) -> str:
    return "".join(ch.lower() if ch.isascii() else ch for ch in name)


def _self_closing(attrs: str | bytes) -> bool:
    return attrs[-1:] in ("/", b"/") and not _ATTR_VALUE_END.search(
        attrs if isinstance(attrs, str) else attrs.decode("latin-1"))


_ATTR_VALUE_END = re.compile(rf"=[{_WS}]*+(?![\"'])[^{_WS}>]*+\Z")


def _font_breaks_out(attrs: str | bytes) -> bool:
    return any(n in attributes(attrs) for n in ("color", "face", "size"))


def _html_encoding(attrs: str | bytes) -> bool:
    encoding = attributes(attrs).get("encoding") or ""
    return encoding.lower() in _HTML_ENCODINGS


try:  # the same scanner in C (`_html_scan.c`, built on install); pure Python without it
    from laion_assets.pipeline.formats import _html_scan as _compiled
except ImportError:  # pragma: no cover - a machine without a C compiler
    _compiled = None
else:
    _compiled.configure(decode_attribute_value, _font_breaks_out, _html_encoding)
