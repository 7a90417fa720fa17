"""Caption rules: personal data (e-mail addresses, phone numbers) and keyword lists.

Keywords match whole words, case-insensitively, in the alt text and in the image URL (split
on anything that is not a letter or digit).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*"
                   r"\.[A-Za-z]{2,24}(?![\w-])")
# a run of digit groups with separators, optionally +country and (area); 9 to 15 digits
# (after a country code the first group may be one digit: +33 1 23 45 67 89)
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{1,8}"
                   r"|(?:\(\d{1,5}\)[ .-]?)?\d{2,8})"
                   r"(?:[ .-]\d{2,8}){1,5}(?![\w])|(?<![\w+])\+\d{9,15}(?!\w)")
# what such a run also is: a date (2024-11-21 10:30, 21.11.2024 10) or a list of years
DATE = re.compile(r"(?<!\d)(?:(?:19|20)\d\d([-./])\d\d?\1\d\d?"
                  r"|\d\d?([-./])\d\d?\2(?:19|20)\d\d)(?!\d)")
YEARS = re.compile(r"(?:19|20)\d\d(?:[ .-](?:19|20)\d\d)+")
REDACTIONS = {"email": "[email]", "phone": "[phone]"}

DEFAULT_NSFW_KEYWORDS = (
    "porn", "porno", "pornographic", "xxx", "nsfw", "nude", "nudes", "nudity", "naked",
    "hentai", "erotic", "sex", "topless", "fetish", "onlyfans",
)
DEFAULT_MINOR_KEYWORDS = (
    "child", "children", "kid", "kids", "teen", "teens", "minor", "underage", "preteen",
    "schoolgirl", "schoolboy", "toddler", "baby", "loli",
)


def _phone_numbers(text: str) -> list[str]:
    return [m.group(0) for m in PHONE.finditer(text)
            if 9 <= sum(ch.isdigit() for ch in m.group(0)) <= 15
            and not DATE.search(m.group(0)) and not YEARS.fullmatch(m.group(0))]


def personal_data(text: str) -> list[tuple[str, str]]:
    """(kind, match) for every e-mail address and phone number in `text`."""
    found = [("email", m.group(0)) for m in EMAIL.finditer(text)]
    return found + [("phone", p) for p in _phone_numbers(text)]


def redact(text: str) -> str:
    """`text` with e-mail addresses and phone numbers replaced by placeholders."""
    text = EMAIL.sub(REDACTIONS["email"], text)
    for number in _phone_numbers(text):
        text = text.replace(number, REDACTIONS["phone"])
    return text


class KeywordMatcher:
    """Whole-word, case-insensitive matching of a keyword list."""

    def __init__(self, keywords: Iterable[str]) -> None:
        words = sorted({w.strip().lower() for w in keywords if w.strip()}, key=len, reverse=True)
        self.pattern = (re.compile(r"(?<![^\W_])(" + "|".join(map(re.escape, words))
                                   + r")(?![^\W_])", re.IGNORECASE) if words else None)

    def first(self, *texts: str) -> str | None:
        """The first keyword found in any of `texts`, or None."""
        if self.pattern is None:
            return None
        for text in texts:
            match = self.pattern.search(text)
            if match:
                return match.group(1).lower()
        return None
