"""Caption rules: e-mail and phone detection and redaction, and the keyword matcher."""

import pytest

from laion_assets.pipeline.safety.text_rules import (
    DEFAULT_MINOR_KEYWORDS,
    DEFAULT_NSFW_KEYWORDS,
    KeywordMatcher,
    personal_data,
    redact,
)

# (text, what personal_data finds, the redacted text)
POSITIVES = [
    ("contact john.doe@example.com today", [("email", "john.doe@example.com")],
     "contact [email] today"),
    ("mail: a+b@sub.example.co.uk.", [("email", "a+b@sub.example.co.uk")], "mail: [email]."),
    ("<Jane_Roe-1@Example.ORG>", [("email", "Jane_Roe-1@Example.ORG")], "<[email]>"),
    ("call +1 (555) 123-4567 now", [("phone", "+1 (555) 123-4567")], "call [phone] now"),
    ("+1-555-123-4567", [("phone", "+1-555-123-4567")], "[phone]"),
    ("Tel. +44 20 7946 0958", [("phone", "+44 20 7946 0958")], "Tel. [phone]"),
    ("+44 (0)20 7946 0958", [("phone", "+44 (0)20 7946 0958")], "[phone]"),
    ("appel: +33 1 23 45 67 89", [("phone", "+33 1 23 45 67 89")], "appel: [phone]"),
    ("01 23 45 67 89", [("phone", "01 23 45 67 89")], "[phone]"),
    ("(030) 1234 5678", [("phone", "(030) 1234 5678")], "[phone]"),
    ("(555) 123-4567", [("phone", "(555) 123-4567")], "[phone]"),
    ("555-123-4567", [("phone", "555-123-4567")], "[phone]"),
    ("555.123.4567", [("phone", "555.123.4567")], "[phone]"),
    ("1-800-555-0199", [("phone", "800-555-0199")], "1-[phone]"),  # the trunk 1 may stay
    ("whatsapp +4915112345678!", [("phone", "+4915112345678")], "whatsapp [phone]!"),
    ("mobil 0151 12345678", [("phone", "0151 12345678")], "mobil [phone]"),
    ("x@y.io or 555-123-4567", [("email", "x@y.io"), ("phone", "555-123-4567")],
     "[email] or [phone]"),
    ("a@b.com, c@d.net", [("email", "a@b.com"), ("email", "c@d.net")], "[email], [email]"),
]
NEGATIVES = [
    "a red bicycle on a sunny day",
    "user@localhost", "@handle on twitter", "foo@bar", "x@y.z", "email me at example dot com",
    "taken 2024-11-21", "taken 2024-11-21 10:30", "21.11.2024 10:30", "2024-11-21 - 2024-11-28",
    "Nov 21, 2024 10:30:45", "12:30 - 14:45 on 21.11.2024", "25 12 2024",
    "ISBN 978-3-16-148410-0", "ISBN 9783161484100", "ISBN 0-306-40615-2",
    "only $1,299.99 now", "price 1 299 euros", "1,000,000 visitors", "EUR 12.99 - 15.49",
    "1920 1080 wallpaper", "1920x1080", "3840 x 2160 px", "IMG_20241121_103045.jpg",
    "years 1998 1999 2000", "from 1999 to 2005", "2019 2020 2021 2022", "(c) 2009-2024",
    "v1.2.3.4", "3.14159265358979", "+12", "call 555-1234",
]


@pytest.mark.parametrize(("text", "found", "redacted"), POSITIVES)
def test_personal_data_found_and_redacted(text, found, redacted):
    assert personal_data(text) == found
    assert redact(text) == redacted
    assert personal_data(redact(text)) == []


@pytest.mark.parametrize("text", NEGATIVES)
def test_no_personal_data(text):
    assert personal_data(text) == []
    assert redact(text) == text


@pytest.mark.parametrize("text", [
    "1" * 100_000,
    "12 " * 40_000,
    "1-" * 50_000,
    "+" * 50_000 + "1" * 20,
    "(1) " * 30_000,
    "@" * 100_000,
    "a" * 100_000 + "@",
    "a@" * 50_000,
    "x@" + "a." * 50_000,
    "a.b-c+d" * 15_000 + "@",
    ("word " * 20_000)[:100_000],
])
def test_hostile_inputs_return_promptly(text):
    found = personal_data(text)
    redacted = redact(text)
    # correct as well as prompt: none of these holds an address or a 9..15-digit number
    if text.startswith("12 "):  # runs of six 2-digit groups are 12-digit "numbers"
        assert found and all(kind == "phone" for kind, _ in found)
        assert "12" not in redacted.replace("[phone]", "")[:100]
    else:
        assert found == [] and redacted == text


def test_a_long_caption_with_one_address_in_the_middle():
    text = "lorem ipsum " * 4_000 + "write to jane@example.org " + "dolor sit " * 4_000
    assert personal_data(text) == [("email", "jane@example.org")]
    assert redact(text).count("[email]") == 1 and "jane@" not in redact(text)


NSFW = KeywordMatcher(DEFAULT_NSFW_KEYWORDS)


@pytest.mark.parametrize(("texts", "word"), [
    (("Sussex countryside", "https://img.example.com/essex.jpg"), None),
    (("Middlesex University", "https://example.com/a.jpg"), None),
    (("sexy dress", "https://example.com/a.jpg"), None),  # whole words only
    (("a photo", "http://x.example/xxx_video.jpg"), "xxx"),
    (("a photo", "https://example.com/gallery/NUDE-beach-01.jpg"), "nude"),
    (("XXX Video", ""), "xxx"),
    (("sex-education poster", ""), "sex"),
    (("sex_ed", ""), "sex"),
    (("Pornographic", ""), "pornographic"),
    (("porn", ""), "porn"),
    (("", "https://cdn.example.com/img?tag=hentai&id=1"), "hentai"),
    (("pornography", "https://example.com/unsex.jpg"), None),
    (("a red bicycle", "https://example.com/1.jpg"), None),
])
def test_keywords_match_whole_words_case_insensitively(texts, word):
    assert NSFW.first(*texts) == word


def test_keyword_matcher_picks_the_longest_word_and_ignores_blanks():
    matcher = KeywordMatcher(["porn", "Porno", "  ", ""])
    assert matcher.first("free PORNO here") == "porno"
    assert matcher.first("porn") == "porn"
    assert matcher.first("pornos") is None
    assert KeywordMatcher(["a.b"]).first("xa.b", "see a.b now") == "a.b"  # escaped, not regex


def test_an_empty_keyword_list_matches_nothing():
    assert KeywordMatcher([]).first("porn xxx nude", "http://x.example/xxx.jpg") is None
    assert KeywordMatcher(["", " "]).first("anything") is None
    minors = KeywordMatcher(DEFAULT_MINOR_KEYWORDS)
    assert minors.first("kids playing", "") == "kids"
    assert minors.first("skidding car", "https://example.com/kidney.jpg") is None
