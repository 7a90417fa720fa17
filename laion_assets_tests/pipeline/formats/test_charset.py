"""Decoding HTML bytes: HTTP header charset, then `<meta>` prescan, then UTF-8, then detection."""

from __future__ import annotations

import pytest

from laion_assets.pipeline.formats.charset import (
    META_PRESCAN_BYTES,
    codec_for,
    declared_in_meta,
    decode_html,
)

RUSSIAN = (
    "<html><head><title>Новости культуры</title></head><body><p>Выставка современного "
    "искусства открылась в Москве. Художники из разных городов представили свои работы."
    '</p><img src="a.jpg" alt="Картина художника на выставке в Москве"></body></html>'
)
JAPANESE = (
    "<html><head><title>京都の紅葉</title></head><body><p>京都の秋はとても美しいです。"
    "多くの観光客が紅葉を見に来ます。清水寺や嵐山では、赤や黄色の葉がとてもきれいです。</p>"
    '<img src="a.jpg" alt="清水寺の紅葉と夕焼けの景色"></body></html>'
)
CHINESE = (
    "<html><head><title>长城旅游</title></head><body><p>秋天的长城非常美丽，很多游客来这里"
    "参观。八达岭长城是最有名的一段。</p><img src=a.jpg alt=秋天的八达岭长城></body></html>"
)


def test_header_charset_comes_first():
    body = '<meta charset="utf-8"><p>café</p>'.encode("cp1252")
    assert decode_html(body, "windows-1252") == ('<meta charset="utf-8"><p>café</p>', "cp1252",
                                                  "header")


def test_meta_when_the_header_has_none_or_an_unknown_label():
    body = '<meta charset="windows-1251"><p>Привет</p>'.encode("cp1251")
    assert decode_html(body, None)[1:] == ("cp1251", "meta")
    assert decode_html(body, "no-such-charset")[1:] == ("cp1251", "meta")
    assert "Привет" in decode_html(body, None)[0]


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (b'<meta charset="utf-8">', "utf-8"),
        (b"<META CHARSET='KOI8-R'>", "KOI8-R"),
        (b"<meta charset=gb2312>", "gb2312"),
        (b'<meta http-equiv="Content-Type" content="text/html; charset=Shift_JIS">', "Shift_JIS"),
        (b'<meta content="text/html;charset=euc-jp" http-equiv="content-type">', "euc-jp"),
        (b"<meta name=viewport content=width=device-width>", None),
        (b"<p>no meta at all</p>", None),
    ],
)
def test_meta_prescan(head, expected):
    assert declared_in_meta(b"<html><head>" + head + b"</head>") == expected


def test_meta_after_the_prescan_window_is_ignored():
    late = b" " * META_PRESCAN_BYTES + b'<meta charset="windows-1251">'
    assert declared_in_meta(late) is None
    body = late + "Привет".encode("cp1251") * 20
    assert decode_html(body, None)[2] == "detected"


def test_utf8_before_detection():
    body = "<p>Grüße aus Köln, 東京, Москва</p>".encode()
    assert decode_html(body, None) == ("<p>Grüße aus Köln, 東京, Москва</p>", "utf-8", "utf-8")
    assert decode_html(b"plain ascii", None) == ("plain ascii", "utf-8", "utf-8")


@pytest.mark.parametrize(
    ("text", "codec", "expected_codec"),
    [
        (RUSSIAN, "cp1251", "cp1251"),
        (JAPANESE, "shift_jis", "shift_jis"),
        (CHINESE, "gbk", "gb18030"),  # a superset of GBK
    ],
)
def test_undeclared_charsets_are_detected(text, codec, expected_codec):
    body = text.encode(codec)
    html, found, source = decode_html(body, None)
    assert (html, found, source) == (text, expected_codec, "detected")


@pytest.mark.parametrize(
    ("label", "codec"),
    [
        ("utf-8", "utf-8"), ("UTF8", "utf-8"), (" Windows-1251 ", "cp1251"),
        # the HTML standard's aliases, not Python's
        ("iso-8859-1", "cp1252"), ("latin1", "cp1252"), ("us-ascii", "cp1252"),
        ("gb2312", "gbk"), ("x-sjis", "shift_jis"), ("iso-8859-9", "cp1254"),
        ("x-user-defined", "latin-1"), ("koi8-r", "koi8-r"),
        ("no-such-charset", None), ("", None), (None, None),
    ],
)
def test_codec_for(label, codec):
    assert codec_for(label) == codec


def test_latin1_label_decodes_as_windows_1252():
    assert decode_html(b"\x80 \x93quoted\x94", "iso-8859-1")[0] == "\u20ac \u201cquoted\u201d"


def test_undecodable_bytes_are_replaced_not_fatal():
    text, codec, source = decode_html(b"ok \xff\xfe bytes", "utf-8")
    assert (text, codec, source) == ("ok \ufffd\ufffd bytes", "utf-8", "header")
