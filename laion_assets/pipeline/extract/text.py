"""Alt text normalisation: entities are decoded by the HTML parser; whitespace is collapsed."""

from __future__ import annotations

import re

# Not \x0b, \x0c, \x1c-\x1f, U+2028, U+2029: those are whitespace (`\s`), so they separate words.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1b\x7f\u200b-\u200f\ufeff]")


def normalize_alt(value: str) -> str:
    """Collapse every run of whitespace to one space, drop control characters, trim."""
    if not value:
        return ""
    if not value.isprintable():  # printable text has nothing for _CONTROL to remove
        value = _CONTROL.sub("", value)
    return " ".join(value.split())  # str.split() splits on exactly what `\s` matches
