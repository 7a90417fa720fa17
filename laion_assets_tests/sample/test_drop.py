"""Tests for the deterministic sample crawl drop generator."""

from __future__ import annotations

import gzip
import hashlib
import io
import re
from collections import defaultdict
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from PIL import Image
from warcio.archiveiterator import ArchiveIterator

from laion_assets.sample.drop import (
    FEATURE_PAGES,
    LISTING_NAME,
    SampleDrop,
    write_sample_drop,
)

CRAWL = "CC-MAIN-SAMPLE"
PIL_MIME = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "GIF": "image/gif"}


@dataclass(frozen=True)
class Rec:
    """The parts of a WARC record the tests look at."""

    file_index: int
    rec_type: str
    uri: str
    status: int | None
    ctype: str
    body: bytes
    warc_headers: dict[str, str]
    http_headers: dict[str, str]


def read_records(drop: SampleDrop) -> list[Rec]:
    """Every record of every WARC file in the drop, in order."""
    out = []
    for index, path in enumerate(drop.warc_files):
        with path.open("rb") as fh:
            for r in ArchiveIterator(fh):
                http = r.http_headers
                status = int(http.get_statuscode()) if http and r.rec_type != "request" else None
                out.append(Rec(
                    index, r.rec_type, r.rec_headers.get_header("WARC-Target-URI") or "",
                    status, (http.get_header("Content-Type") or "") if http else "",
                    r.content_stream().read(), dict(r.rec_headers.headers),
                    dict(http.headers) if http else {},
                ))
    return out


def html_pages(records: list[Rec]) -> list[Rec]:
    """The ``200 text/html`` page responses (404 bodies are not pages)."""
    return [r for r in records if r.rec_type == "response" and r.status == 200
            and r.ctype.startswith("text/html")]


def image_responses(records: list[Rec]) -> list[Rec]:
    """The ``200 image/*`` responses."""
    return [r for r in records if r.rec_type == "response" and r.status == 200
            and r.ctype.startswith("image/")]


def decode(page: Rec) -> str:
    """Decode a page like a careful extractor: header, then meta, then utf-8/cp1252."""
    match = re.search(r"charset=([\w-]+)", page.ctype) or re.search(
        rb"""charset=["']?([\w-]+)""", page.body[:2048])
    if match:
        name = match.group(1)
        return page.body.decode(name if isinstance(name, str) else name.decode())
    try:
        return page.body.decode("utf-8")
    except UnicodeDecodeError:
        return page.body.decode("cp1252")


class ImageRefs(HTMLParser):
    """Collects ``<img>`` attributes and resolved image URLs, honouring ``<base href>``."""

    URL_ATTRS = ("src", "data-src", "data-lazy-src")
    SRCSET_ATTRS = ("srcset", "data-srcset")

    def __init__(self, page_url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = page_url
        self.imgs: list[dict[str, str | None]] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "base" and a.get("href"):
            self.base = urljoin(self.base, a["href"])
        if tag == "img":
            self.imgs.append(a)
        if tag not in ("img", "source"):
            return
        raw = [a[n] for n in self.URL_ATTRS if a.get(n)]
        for name in self.SRCSET_ATTRS:
            raw += [c.split()[0] for c in (a.get(name) or "").split(",") if c.strip()]
        self.urls += [urljoin(self.base, u.strip()) for u in raw]


@dataclass(frozen=True)
class ParsedPage:
    """A decoded page with its image references."""

    rec: Rec
    text: str
    refs: ImageRefs


def parse(page: Rec) -> ParsedPage:
    """Decode and parse one page."""
    text = decode(page)
    refs = ImageRefs(page.uri)
    refs.feed(text)
    return ParsedPage(page, text, refs)


@pytest.fixture(scope="module")
def drop(tmp_path_factory: pytest.TempPathFactory) -> SampleDrop:
    return write_sample_drop(tmp_path_factory.mktemp("drops") / CRAWL)


@pytest.fixture(scope="module")
def records(drop: SampleDrop) -> list[Rec]:
    return read_records(drop)


@pytest.fixture(scope="module")
def parsed(records: list[Rec]) -> list[ParsedPage]:
    return [parse(p) for p in html_pages(records)]


@pytest.fixture(scope="module")
def all_html(parsed: list[ParsedPage]) -> str:
    return "\n".join(p.text for p in parsed)


def drop_bytes(drop: SampleDrop) -> dict[str, bytes]:
    """Every file of the drop by relative path."""
    return {p.relative_to(drop.drop_dir).as_posix(): p.read_bytes()
            for p in sorted(drop.drop_dir.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- layout


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = write_sample_drop(tmp_path / "a" / CRAWL, seed=7)
    b = write_sample_drop(tmp_path / "b" / CRAWL, seed=7)
    assert drop_bytes(a) == drop_bytes(b)
    assert (a.pages, a.image_records) == (b.pages, b.image_records)


# The sha256 of the default drop's decompressed files (name, NUL, content), in path order:
# the drop's content is pinned, so moving the generator's code changes no byte of it. Pillow
# encodes the images; a Pillow release that encodes differently changes this digest too.
DEFAULT_DROP_CONTENT_SHA256 = "e0a764afb15250bd0a85326d530fa22679d9fbe5051697665a1de960d788a6bd"


def test_default_drop_content_is_pinned(drop: SampleDrop) -> None:
    digest = hashlib.sha256()
    for name, data in drop_bytes(drop).items():
        digest.update(name.encode() + b"\0")
        digest.update(gzip.decompress(data))
    assert digest.hexdigest() == DEFAULT_DROP_CONTENT_SHA256


def test_different_seed_gives_different_files(tmp_path: Path) -> None:
    a = drop_bytes(write_sample_drop(tmp_path / "a" / CRAWL, seed=1))
    b = drop_bytes(write_sample_drop(tmp_path / "b" / CRAWL, seed=2))
    assert a.keys() == b.keys()
    assert all(a[name] != b[name] for name in a if name.endswith(".warc.gz"))


def test_summary_and_listing(drop: SampleDrop) -> None:
    assert drop.crawl == CRAWL
    assert drop.pages == 48
    lines = gzip.decompress((drop.drop_dir / LISTING_NAME).read_bytes()).decode().splitlines()
    assert lines == [p.relative_to(drop.drop_dir).as_posix() for p in drop.warc_files]
    assert len(lines) == 4
    root = drop.drop_dir.resolve()
    for index, line in enumerate(lines):
        assert not line.startswith("/")
        assert line == f"segments/1700000000000.00/warc/{CRAWL}-20261121000000-{index:05d}.warc.gz"
        assert (root / line).resolve().is_relative_to(root)
        assert (root / line).is_file()


def test_drop_stays_small(drop: SampleDrop) -> None:
    assert sum(len(b) for b in drop_bytes(drop).values()) < 3_000_000


def test_small_drops_and_bad_arguments(tmp_path: Path) -> None:
    small = write_sample_drop(tmp_path / "tiny", n_files=1, pages_per_file=3)
    assert small.crawl == "tiny" and small.pages == 3 and len(small.warc_files) == 1
    assert len(html_pages(read_records(small))) == 3
    with pytest.raises(ValueError):
        write_sample_drop(tmp_path / "bad", n_files=0)


# --------------------------------------------------------------------------- WARC records


def test_every_warc_parses_and_counts_match(drop: SampleDrop, records: list[Rec]) -> None:
    for index in range(len(drop.warc_files)):
        own = [r for r in records if r.file_index == index]
        assert own[0].rec_type == "warcinfo"
        assert all(r.warc_headers["WARC-Date"].startswith("2026-11-21T") for r in own)
    assert len(html_pages(records)) == drop.pages
    assert len(image_responses(records)) == drop.image_records
    record_ids = [r.warc_headers["WARC-Record-ID"] for r in records]
    assert len(set(record_ids)) == len(record_ids)


def test_requests_precede_their_responses(records: list[Rec]) -> None:
    for i, rec in enumerate(records):
        if rec.rec_type == "request":
            nxt = records[i + 1]
            assert (nxt.rec_type, nxt.uri) == ("response", rec.uri)
            assert nxt.warc_headers["WARC-Concurrent-To"] == rec.warc_headers["WARC-Record-ID"]
    pages = {r.uri for r in html_pages(records)}
    assert pages <= {r.uri for r in records if r.rec_type == "request"}


def test_only_reserved_example_domains(records: list[Rec]) -> None:
    hosts = {urlsplit(r.uri).hostname for r in records if r.uri}
    assert hosts and all(h.endswith((".example", "example.com", "example.net", "example.org"))
                         for h in hosts)


def test_non_page_records_are_present(records: list[Rec]) -> None:
    types = {r.ctype for r in records if r.rec_type == "response" and r.status == 200}
    assert {"text/css", "application/javascript", "application/pdf"} <= types
    redirects = [r for r in records if r.status == 301]
    assert len(redirects) == 1
    assert redirects[0].http_headers["Location"].startswith("http://news.example.org/")
    revisits = [r for r in records if r.rec_type == "revisit"]
    assert revisits
    assert all(r.warc_headers["WARC-Refers-To-Target-URI"] == r.uri for r in revisits)
    assert {r.uri for r in revisits} <= {r.uri for r in image_responses(records)}


def test_image_404s(records: list[Rec], parsed: list[ParsedPage]) -> None:
    referenced = {u for p in parsed for u in p.refs.urls}
    missing = [r for r in records if r.status == 404]
    assert len(missing) >= 2 and all(r.uri in referenced for r in missing)


def test_captures_match_references(records: list[Rec], parsed: list[ParsedPage]) -> None:
    referenced = {u for p in parsed for u in p.refs.urls if u.startswith("http")}
    extras = {r.uri for r in records if r.rec_type == "request"}
    captured = {r.uri for r in records if r.rec_type in ("response", "revisit")} - extras
    assert captured <= referenced
    uncaptured = referenced - captured
    assert len(uncaptured) >= 3
    assert "http://www.oldsite.example/fotos/x.jpg" not in referenced | captured


def test_each_file_captures_an_image_once(records: list[Rec]) -> None:
    seen = set()
    for r in records:
        if r.rec_type in ("response", "revisit") and r.ctype.startswith("image/"):
            assert (r.file_index, r.uri) not in seen
            seen.add((r.file_index, r.uri))


# --------------------------------------------------------------------------- images


def test_images_decode_with_pillow(records: list[Rec]) -> None:
    opened = []
    for rec in image_responses(records):
        img = Image.open(io.BytesIO(rec.body))
        img.load()
        opened.append((rec, img))
    mismatched = [rec.uri for rec, img in opened if PIL_MIME[img.format] != rec.ctype]
    assert mismatched == ["http://news.example.org/bilder/sport/ziel.jpg"]
    assert {img.format for _, img in opened} == {"JPEG", "PNG", "WEBP", "GIF"}
    assert any(getattr(img, "n_frames", 1) > 1 for _, img in opened)
    assert any(img.size == (1, 1) and img.format == "GIF" for _, img in opened)
    assert any(max(img.size) >= 10 * min(img.size) for _, img in opened)


def test_image_sizes(records: list[Rec]) -> None:
    sizes = [len(r.body) for r in image_responses(records)]
    assert max(sizes) < 60_000
    assert sum(s > 5_000 for s in sizes) > 0.8 * len(sizes)
    assert sum(s < 5_000 for s in sizes) >= 3


# --------------------------------------------------------------------------- HTML features


def test_feature_pages_are_spread_over_all_files(drop: SampleDrop, records: list[Rec]) -> None:
    urls = {f().url for f in FEATURE_PAGES}
    files = {r.file_index for r in html_pages(records) if r.uri in urls}
    assert len({r.uri for r in html_pages(records)} & urls) == len(FEATURE_PAGES)
    assert files == set(range(len(drop.warc_files)))


@pytest.mark.parametrize("pattern", [
    r'src="img/', r'src="\.\./', r'src="/[^/]', r'src="//cdn\.example\.net/',
    r'src="https?://', r'<base href="https://', r'<base href="/',
])
def test_url_forms(all_html: str, pattern: str) -> None:
    assert re.search(pattern, all_html)


def test_base_href_changes_resolution(parsed: list[ParsedPage]) -> None:
    urls = {u for p in parsed for u in p.refs.urls}
    assert "https://static.news.example.org/bilder/fotos/marktplatz.jpg" in urls
    assert "https://www.zhongwen.example/lvyou/images/2026/badaling.webp" in urls


@pytest.mark.parametrize("pattern", [
    r'<img src="[^"]+" srcset="[^"]+ \d+w,',  # w descriptors with src
    r'<img srcset="[^"]+ 1x, [^"]+ 2x"',  # x descriptors without src
    r"<picture>\s*<source srcset=[^>]+>\s*<source srcset=[^>]+>\s*<img ",
    r'src="data:image/gif;base64,[^"]+" data-src="',  # placeholder + real URL
    r'data-srcset="[^"]+ \d+w', r'data-lazy-src="', r'loading="lazy"',
    r"<noscript><img ", r"<!-- <img src=x\.jpg alt=\"commented out\"> -->",
    r"<IMG SRC=", r"<img src=/[^\s>\"']+ alt=[^\s>\"']+",
    r'src="data:image/png;base64,[^"]+" alt="\w', r'src="javascript:', r'src="mailto:',
])
def test_markup_features(all_html: str, pattern: str) -> None:
    assert re.search(pattern, all_html)


@pytest.mark.parametrize("entity", ["&amp;", "&eacute;", "&#8217;", "&quot;"])
def test_entities_in_alt(all_html: str, entity: str) -> None:
    assert re.search(rf'alt="[^"]*{re.escape(entity)}[^"]*"', all_html)


def test_degenerate_alts(parsed: list[ParsedPage]) -> None:
    imgs = [a for p in parsed for a in p.refs.imgs]
    alts = [a["alt"] for a in imgs if "alt" in a]
    assert any("\n" in alt for alt in alts) and any("\t" in alt for alt in alts)
    assert any("   " in alt.strip() for alt in alts)
    assert "" in alts
    assert any(alt and alt.isspace() for alt in alts)
    assert any(0 < len(alt.strip()) < 5 for alt in alts)
    assert any("alt" not in a and a.get("width") != "1" for a in imgs)
    assert "Tom & Jerry\u2019s café mug \"Classic\" in ocean blue" in alts


def test_tracking_pixels(parsed: list[ParsedPage]) -> None:
    pixels = [a for p in parsed for a in p.refs.imgs
              if a.get("width") == "1" and a.get("height") == "1"]
    assert any(a.get("alt") for a in pixels)
    assert any("alt" not in a for a in pixels)


def test_duplicate_pairs_across_pages_and_files(parsed: list[ParsedPage]) -> None:
    where: dict[tuple[str, str], set[tuple[int, str]]] = defaultdict(set)
    alts_by_url: dict[str, set[str]] = defaultdict(set)
    for p in parsed:
        for a in p.refs.imgs:
            if a.get("src") and a.get("alt"):
                url = urljoin(p.refs.base, a["src"])
                where[(url, a["alt"])].add((p.rec.file_index, p.rec.uri))
                alts_by_url[url].add(a["alt"])
    spread = [k for k, v in where.items() if len({f for f, _ in v}) >= 2]
    assert any(url.startswith("https://www.shop.example/catalog/") for url, _ in spread)
    assert len(alts_by_url["https://cdn.example.net/shop/kettle-box.jpg"]) == 2


def test_charset_declared_only_in_header(records: list[Rec]) -> None:
    page = next(p for p in html_pages(records) if "windows-1251" in p.ctype)
    assert b"charset" not in page.body
    assert "Посетители рассматривают картины" in page.body.decode("windows-1251")


def test_charset_declared_only_in_meta(records: list[Rec]) -> None:
    page = next(p for p in html_pages(records) if b'<meta charset="iso-8859-1">' in p.body)
    assert "charset" not in page.ctype
    with pytest.raises(UnicodeDecodeError):
        page.body.decode("utf-8")
    text = page.body.decode("iso-8859-1")
    assert "dorée" in text and "weißen" in text


def test_charset_declared_in_http_equiv(records: list[Rec]) -> None:
    marker = b'<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
    page = next(p for p in html_pages(records) if marker in p.body)
    assert "charset" not in page.ctype
    assert "清水寺" in page.body.decode("shift_jis")


def test_undeclared_legacy_charset(records: list[Rec]) -> None:
    undeclared = [p for p in html_pages(records)
                  if b"charset" not in p.body.lower() and "charset" not in p.ctype]
    assert undeclared
    for page in undeclared:
        with pytest.raises(UnicodeDecodeError):
            page.body.decode("utf-8")
    assert any("Montaña" in p.body.decode("cp1252") for p in undeclared)


def test_alt_text_languages(parsed: list[ParsedPage]) -> None:
    langid = pytest.importorskip("py3langid")
    alts = {a["alt"] for p in parsed for a in p.refs.imgs if a.get("alt")}
    long_alts = [t for t in alts if len(t.split()) >= 5 or (len(t) >= 12 and " " not in t)]
    found = {langid.classify(t)[0] for t in long_alts}
    assert {"en", "de", "fr", "es", "ru", "ja", "zh", "ar"} <= found
