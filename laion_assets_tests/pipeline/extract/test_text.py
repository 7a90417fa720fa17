"""Alt text normalisation: whitespace collapsed, invisible characters dropped, trimmed."""

from __future__ import annotations

import pytest

from laion_assets.pipeline.extract.text import normalize_alt


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("A cat", "A cat"),
        ("  A   cat \n on\ta\r\nmat  ", "A cat on a mat"),
        ("no\xa0break\u3000ideographic\u2009thin", "no break ideographic thin"),
        ("zero\u200bwidth\u200d joiner\ufeff", "zerowidth joiner"),
        ("rtl\u200f mark\u200e", "rtl mark"),
        ("bell\x07 and nul\x00 and del\x7f", "bell and nul and del"),
        # whitespace-like controls separate words: they are not deleted
        ("Line one\u2028line two\u2029para", "Line one line two para"),
        ("form\x0cfeed\x0bvertical", "form feed vertical"),
        ("unit\x1fsep\x1crecord", "unit sep record"),
        ("a \u200b b", "a b"),  # no double space where a zero-width char stood
        ("Café crème – 東京", "Café crème – 東京"),  # nothing else is touched
        ("", ""),
        ("   \n\t ", ""),
        ("\u200b\ufeff", ""),
    ],
)
def test_normalize_alt(raw, expected):
    assert normalize_alt(raw) == expected


def test_normalize_alt_is_idempotent():
    for raw in ("  x \u2028 y ", "a\u200bb  c", "\x0c\x0b  z"):
        once = normalize_alt(raw)
        assert normalize_alt(once) == once
