"""Deterministic generator for a small, Common-Crawl-shaped sample crawl drop.

The drop is a test fixture for the WARC → image/alt-text pipeline: a handful of gzipped
WARC/1.0 files full of deliberately awkward HTML, the images those pages reference, and
some records that extraction must ignore. Everything is derived from ``seed``: the same
seed always yields byte-identical files (fixed ``WARC-Date``s, record ids drawn from a
seeded :class:`random.Random`, gzip headers with ``mtime=0``).

Layout (the crawl name is the drop folder's name, e.g. ``var/drops/CC-MAIN-SAMPLE``)::

    <drop_dir>/warc.paths.gz
        gzip text, one path per line, relative to <drop_dir>; listing order = file order
    <drop_dir>/segments/1700000000000.00/warc/<CRAWL>-20261121000000-0000N.warc.gz
        N = 0 .. n_files-1, written with warcio's WARCWriter (one gzip member per record)

Record order inside each WARC file:

* one ``warcinfo`` record;
* per page: a ``request`` record, then a ``response`` record (``HTTP/1.1 200`` with a
  ``Content-Type`` header), then a ``response`` record for every image the page
  references that is not yet captured in this file (what an archiving crawler stores
  alongside a page). A few referenced images are deliberately *not* captured, two image
  URLs answer ``404``, and the shop's "secure checkout" badge is stored as a ``revisit``
  record (identical-payload-digest) in every file after the one that first captured it;
* non-page captures that extraction must ignore (``text/css``,
  ``application/javascript``, ``application/pdf`` and a ``301`` redirect), each as a
  ``request`` + ``response`` pair.

``SampleDrop.pages`` counts the ``200 text/html`` page responses
(``n_files * pages_per_file``); ``SampleDrop.image_records`` counts the ``200`` image
responses (bytes made with Pillow; the 404s and revisits are not counted).

Page slots are dealt round-robin over the files (slot k goes to file ``k % n_files``, then
each file's pages are shuffled). The first ``FEATURE_PAGE_COUNT`` (14) slots hold the
hand-written *feature pages* listed in ``FEATURE_PAGES`` (relative/protocol-relative URLs,
``<base href>``, ``srcset``/``<picture>``, lazy-loading attributes, entity-laden and
degenerate alt texts, tracking pixels, ``data:``/``javascript:``/``mailto:`` sources,
``<noscript>`` and commented-out images, uppercase/unquoted markup, pages in windows-1251 /
iso-8859-1 / shift_jis / undeclared windows-1252, alt texts in eight languages); the other
slots are seeded filler pages on the same fake sites. With the defaults (4 files x 12
pages) every feature is present and each file holds 3-4 feature pages; a drop with fewer
than 14 slots only gets the first feature pages. Only reserved example domains are used
(``*.example``, ``example.com/.net/.org``; fake IPs from 192.0.2.0/24).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import random
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from PIL import Image
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

SEGMENT = "1700000000000.00"
FILE_TIMESTAMP = "20261121000000"
LISTING_NAME = "warc.paths.gz"
START_DATE = datetime(2026, 11, 21, tzinfo=UTC)
USER_AGENT = "SampleBot/1.0 (+https://crawler.example/bot)"
PLACEHOLDER_GIF = (
    "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
)
REVISIT_PROFILE = "http://netpreserve.org/warc/1.0/revisit/identical-payload-digest"
MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AGIF": "image/gif",
    "PIXEL": "image/gif",
}


@dataclass(frozen=True)
class SampleDrop:
    """Summary of a written sample drop."""

    drop_dir: Path
    crawl: str
    warc_files: list[Path]
    pages: int
    image_records: int


@dataclass(frozen=True)
class ImageSpec:
    """An image URL a page references, and how the crawler captured it."""

    url: str
    fmt: str  # JPEG, PNG, WEBP, GIF, AGIF (animated GIF) or PIXEL (1x1 GIF)
    size: tuple[int, int] = (240, 160)
    noise: float = 0.3
    block: int = 0  # noise block size in pixels; 0 = format default
    served_as: str = ""  # Content-Type header; "" = the true MIME type
    status: int = 200
    revisit: bool = False  # later files store a revisit record instead of the bytes

    @property
    def content_type(self) -> str:
        """The Content-Type header the server sends."""
        return self.served_as or MIME_BY_FORMAT[self.fmt]


@dataclass(frozen=True)
class Page:
    """One captured HTML page: its markup, encoding and the images to capture with it."""

    url: str
    html: str
    encoding: str = "utf-8"
    content_type: str = "text/html; charset=utf-8"
    images: tuple[ImageSpec, ...] = ()


@dataclass(frozen=True)
class Extra:
    """A non-page capture (stylesheet, script, PDF, redirect) that extraction must skip."""

    url: str
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Site:
    """A fake web site: origin, name, language and the logo shown on every page."""

    origin: str
    name: str
    lang: str
    logo: ImageSpec
    logo_alt: str
    badge: ImageSpec | None = None

    def images(self) -> tuple[ImageSpec, ...]:
        """Template images present on every page of the site."""
        return (self.logo,) if self.badge is None else (self.logo, self.badge)


@dataclass
class _Capture:
    """Where an image URL was first captured (for revisit records)."""

    record_id: str
    date: str
    digest: str


# --------------------------------------------------------------------------- sites

SHOP = Site(
    "https://www.shop.example", "Shop Example", "en",
    ImageSpec("https://www.shop.example/static/logo.png", "PNG", (160, 48), block=2),
    "Shop Example logo with a green shopping bag",
    ImageSpec("https://www.shop.example/static/badge-secure.png", "PNG", (120, 60),
              block=2, revisit=True),
)
NEWS = Site(
    "http://news.example.org", "Nachrichten Beispiel", "de",
    ImageSpec("http://news.example.org/static/masthead.png", "PNG", (600, 60), block=4),
    "Das blaue Logo der Zeitung Nachrichten Beispiel",
)
BLOG = Site(
    "https://blog.example.com", "Garden & Travel Blog", "en",
    ImageSpec("https://blog.example.com/wp-content/uploads/avatar.jpg", "JPEG", (96, 96)),
    "Portrait photo of the author of this blog",
)
RECETTES = Site(
    "https://www.recettes.example", "Recettes Exemple", "fr",
    ImageSpec("https://www.recettes.example/images/logo.gif", "GIF", (160, 60), block=2),
    "Le logo de Recettes Exemple avec une cuillère en bois",
)
NOVOSTI = Site(
    "https://novosti.example.net", "Новости Пример", "ru",
    ImageSpec("https://novosti.example.net/i/logo.png", "PNG", (180, 50), block=2),
    "Логотип сайта Новости Пример синего цвета",
)
NIHON = Site(
    "https://www.nihon.example", "日本サンプル", "ja",
    ImageSpec("https://www.nihon.example/img/logo.png", "PNG", (180, 50), block=2),
    "日本サンプル旅行ガイドのロゴ画像です",
)
ZHONGWEN = Site(
    "https://www.zhongwen.example", "中文示例", "zh",
    ImageSpec("https://www.zhongwen.example/static/logo.png", "PNG", (180, 50), block=2),
    "中文示例旅游网站的红色标志图片",
)
AKHBAR = Site(
    "https://akhbar.example.org", "أخبار المثال", "ar",
    ImageSpec("https://akhbar.example.org/static/logo.png", "PNG", (180, 50), block=2),
    "شعار موقع أخبار المثال باللون الأخضر",
)

STOCK_PAIRS: tuple[tuple[ImageSpec, str], ...] = (
    (ImageSpec("https://cdn.example.net/stock/sunset-beach.jpg", "JPEG", (320, 213)),
     "Golden sunset over a quiet sandy beach with gentle waves"),
    (ImageSpec("https://cdn.example.net/stock/city-night.jpg", "JPEG", (320, 213)),
     "A busy city street at night with bright neon signs"),
    (ImageSpec("https://cdn.example.net/stock/forest-path.webp", "WEBP", (240, 160)),
     "A narrow path winding through a green summer forest"),
)


# --------------------------------------------------------------------------- markup


def _layout(site: Site, title: str, body: str, *, head: str = "", lang: str = "",
            meta: str = '<meta charset="utf-8">', html_attrs: str = "") -> str:
    """Wrap ``body`` in the site's page template (logo header, footer, optional badge)."""
    badge = "" if site.badge is None else (
        f'<img src="{site.badge.url}" alt="Secure checkout guaranteed by SSL encryption">'
    )
    meta = f"{meta}\n" if meta else ""
    return (
        f'<!DOCTYPE html>\n<html lang="{lang or site.lang}"{html_attrs}>\n<head>\n{meta}{head}'
        f"<title>{title}</title>\n"
        '<link rel="stylesheet" href="/static/site.css">\n</head>\n<body>\n'
        f'<header><a href="/"><img class="logo" src="{site.logo.url}" '
        f'alt="{site.logo_alt}"></a></header>\n'
        f"<main>\n<h1>{title}</h1>\n{body}</main>\n"
        f"<footer><p>&copy; 2026 {site.name}</p>{badge}</footer>\n</body>\n</html>\n"
    )


def _page(site: Site, path: str, title: str, body: str, images: list[ImageSpec],
          **kwargs: str) -> Page:
    """Build a UTF-8 page on ``site`` whose captures are the template and ``images``."""
    html = _layout(site, title, body, **kwargs)
    return Page(site.origin + path, html, images=site.images() + tuple(images))


def _check_png_data_uri() -> str:
    """A tiny inline PNG (green square) as a ``data:`` URI."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (40, 160, 60)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- feature pages


def _page_relative_urls() -> Page:
    """Relative, root-relative, protocol-relative and absolute image URLs (English)."""
    body = (
        "<p>Our best-selling kettle boils a full litre in under three minutes.</p>\n"
        '<div class="gallery">\n'
        '<img src="img/kettle-front.jpg" alt="Stainless steel electric kettle seen from the'
        ' front" width="320" height="213">\n'
        '<img src="../img/kettle-side.png" alt="Side view of the kettle showing the blue'
        ' water level gauge">\n'
        '<img src="/media/kettle-top.webp" alt="Top view of the kettle lid with the steam'
        ' vent open">\n'
        '<img src="//cdn.example.net/shop/kettle-box.jpg" alt="Retail box of the electric'
        ' kettle on a white table">\n'
        '<img src="https://www.shop.example/media/kettle-kitchen.jpg" alt="The kettle on a'
        ' kitchen counter next to two cups of tea">\n</div>\n'
    )
    return _page(SHOP, "/catalog/kitchen/kettle.html", "Electric kettle 1.7 l", body, [
        ImageSpec("https://www.shop.example/catalog/kitchen/img/kettle-front.jpg", "JPEG",
                  (320, 213)),
        ImageSpec("https://www.shop.example/catalog/img/kettle-side.png", "PNG"),
        ImageSpec("https://www.shop.example/media/kettle-top.webp", "WEBP", (240, 240)),
        ImageSpec("https://cdn.example.net/shop/kettle-box.jpg", "JPEG", (240, 180)),
        ImageSpec("https://www.shop.example/media/kettle-kitchen.jpg", "JPEG", (320, 213)),
    ])


def _page_base_href() -> Page:
    """``<base href>`` on another host, one uncaptured image and one 404 (German)."""
    base = "https://static.news.example.org/bilder/"
    body = (
        "<p>Am Wochenende feierte die ganze Stadt das traditionelle Herbstfest.</p>\n"
        '<figure><img src="fotos/marktplatz.jpg" alt="Viele Menschen feiern gemeinsam auf'
        ' dem Marktplatz der Altstadt"><figcaption>Der Marktplatz am Samstag'
        "</figcaption></figure>\n"
        '<img src="fotos/umzug.webp" alt="Der bunte Festumzug zieht am Samstagnachmittag'
        ' durch die Hauptstraße">\n'
        '<img src="fotos/feuerwerk.jpg" alt="Das große Feuerwerk über dem Fluss am späten'
        ' Abend">\n'
        '<img src="/archiv/1999/stadtfest.jpg" alt="Ein altes Foto vom ersten Stadtfest im'
        ' Jahr 1999">\n'
    )
    return _page(NEWS, "/2026/11/21/stadtfest.html", "Tausende feiern das Stadtfest", body, [
        ImageSpec(base + "fotos/marktplatz.jpg", "JPEG", (320, 213)),
        ImageSpec(base + "fotos/umzug.webp", "WEBP"),
        ImageSpec("https://static.news.example.org/archiv/1999/stadtfest.jpg", "JPEG",
                  status=404),
    ], head=f'<base href="{base}">\n')


def _page_srcset() -> Page:
    """``srcset`` with w/x descriptors, with and without ``src``, and ``<picture>`` (Spanish)."""
    up = "/wp-content/uploads/"
    body = (
        "<p>Tres días en Sevilla: calor, azulejos y mucha luz.</p>\n"
        f'<img src="{up}sevilla-640.jpg" srcset="{up}sevilla-320.jpg 320w, {up}sevilla-640.jpg'
        f' 640w, {up}sevilla-1280.jpg 1280w" sizes="(max-width: 600px) 100vw, 640px"'
        ' alt="La catedral de Sevilla vista desde la Giralda al atardecer">\n'
        f'<img srcset="{up}patio.jpg 1x, {up}patio@2x.jpg 2x" alt="Un patio andaluz lleno de'
        ' flores y azulejos de colores">\n'
        f'<picture>\n<source srcset="{up}plaza.avif" type="image/avif">\n'
        f'<source srcset="{up}plaza.webp 1x, {up}plaza@2x.webp 2x" type="image/webp">\n'
        f'<img src="{up}plaza.jpg" alt="La Plaza de España con sus puentes de cerámica y el'
        ' canal">\n</picture>\n'
    )
    o = BLOG.origin + up
    return _page(BLOG, "/2026/11/viaje-a-sevilla/", "Viaje a Sevilla", body, [
        ImageSpec(o + "sevilla-640.jpg", "JPEG", (640, 427), noise=0.05),
        ImageSpec(o + "sevilla-320.jpg", "JPEG", (320, 213)),
        ImageSpec(o + "patio.jpg", "JPEG"),
        ImageSpec(o + "patio@2x.jpg", "JPEG", (480, 320), noise=0.1),
        ImageSpec(o + "plaza.webp", "WEBP"),
        ImageSpec(o + "plaza@2x.webp", "WEBP", (480, 320), noise=0.1),
        ImageSpec(o + "plaza.jpg", "JPEG"),
    ], lang="es")


def _page_lazy() -> Page:
    """``data-src``/``data-srcset``/``data-lazy-src``, ``loading=lazy``, ``<noscript>``."""
    up = "/wp-content/uploads/"
    tomato = "Ripe red tomatoes growing on the vine in late summer"
    body = (
        "<p>October in the vegetable garden: the last harvest before the frost.</p>\n"
        f'<img class="lazyload" src="{PLACEHOLDER_GIF}" data-src="{up}tomatoes.jpg"'
        f' alt="{tomato}">\n'
        f'<noscript><img src="{up}tomatoes.jpg" alt="{tomato}"></noscript>\n'
        f'<img class="lazyload" src="{PLACEHOLDER_GIF}" data-srcset="{up}beans-400.jpg 400w,'
        f' {up}beans-800.jpg 800w" data-sizes="auto" alt="Climbing beans twisting around'
        ' tall bamboo canes">\n'
        f'<img src="{PLACEHOLDER_GIF}" data-lazy-src="{up}sunflowers.webp" alt="A row of tall'
        ' sunflowers against a bright blue sky">\n'
        f'<img src="{up}compost.jpg" loading="lazy" width="240" height="160" alt="A wooden'
        ' compost bin full of autumn leaves and kitchen scraps">\n'
    )
    o = BLOG.origin + up
    return _page(BLOG, "/2026/10/garden-diary/", "Garden diary: October", body, [
        ImageSpec(o + "tomatoes.jpg", "JPEG", (320, 213)),
        ImageSpec(o + "beans-400.jpg", "JPEG", (400, 267), noise=0.15),
        ImageSpec(o + "beans-800.jpg", "JPEG", (800, 533), noise=0.03),
        ImageSpec(o + "sunflowers.webp", "WEBP", (240, 320)),
        ImageSpec(o + "compost.jpg", "JPEG"),
    ])


def _page_alt_edge_cases() -> Page:
    """Entities, whitespace runs, empty/missing/blank/short alts, tiny images (English)."""
    body = (
        "<p>Mugs for every taste.</p>\n<ul>\n"
        '<li><img src="/media/mug-blue.jpg" alt="Tom &amp; Jerry&#8217;s caf&eacute; mug'
        ' &quot;Classic&quot; in ocean blue"></li>\n'
        '<li><img src="/media/mug-red.jpg" alt="Red ceramic mug\n      with a   wide'
        ' handle,\tdishwasher   safe"></li>\n'
        '<li><img src="/media/mug-green.jpg"></li>\n'
        '<li><img src="/media/mug-white.jpg" alt="   "></li>\n'
        '<li><img src="/media/mug-black.jpg" alt="Mug"></li>\n</ul>\n'
        '<hr><img src="/media/divider.png" alt="" role="presentation">\n'
        '<img src="/media/icon-cart.png" alt="Cart" width="24" height="24">\n'
    )
    m = SHOP.origin + "/media/"
    return _page(SHOP, "/catalog/mugs/index.html", "Mugs &amp; cups", body, [
        ImageSpec(m + "mug-blue.jpg", "JPEG", (240, 240)),
        ImageSpec(m + "mug-red.jpg", "JPEG", (240, 240)),
        ImageSpec(m + "mug-green.jpg", "JPEG", (240, 240)),
        ImageSpec(m + "mug-white.jpg", "JPEG", (240, 240)),
        ImageSpec(m + "mug-black.jpg", "JPEG", (64, 64), noise=0.1),
        ImageSpec(m + "divider.png", "PNG", (600, 4), block=8),
        ImageSpec(m + "icon-cart.png", "PNG", (24, 24), block=8),
    ])


def _page_pixels_and_schemes() -> Page:
    """1x1 tracking pixels, ``data:``/``javascript:``/``mailto:`` image sources (English)."""
    pixel = "https://pixel.tracker.example/p.gif?order=1001"
    body = (
        "<p>Thank you! Your order has been received.</p>\n"
        f'<img src="{_check_png_data_uri()}" alt="Small green check mark confirming that your'
        ' order was received">\n'
        '<a href="javascript:window.print()"><img src="javascript:void(0)" alt="Click here'
        ' to print your receipt for your records"></a>\n'
        '<a href="mailto:orders@shop.example"><img src="mailto:orders@shop.example"'
        ' alt="Send an email to our friendly customer service team"></a>\n'
        f'<img src="{pixel}" width="1" height="1" alt="Thank you for shopping with us'
        ' today">\n'
        f'<img src="{pixel}&amp;step=2" width="1" height="1" style="display:none">\n'
    )
    return _page(SHOP, "/checkout/thanks.html", "Order confirmed", body, [
        ImageSpec(pixel, "PIXEL", (1, 1)),
        ImageSpec(pixel + "&step=2", "PIXEL", (1, 1)),
    ])


def _page_old_school() -> Page:
    """Uppercase tags, unquoted attributes, commented-out images, undeclared windows-1252."""
    html = (
        "<HTML>\n<HEAD>\n<TITLE>Galería de fotos de Andalucía</TITLE>\n</HEAD>\n"
        "<BODY BGCOLOR=#FFFFFF TEXT=#000000>\n<CENTER><H1>Galería de fotos</H1></CENTER>\n"
        "<P>Fotos de nuestras vacaciones en el sur de España. ¡Bienvenidos!</P>\n"
        '<IMG SRC="/fotos/playa.jpg" ALT="Una playa tranquila con palmeras y arena blanca en'
        ' verano" WIDTH=320 HEIGHT=213>\n<BR>\n'
        "<img src=/fotos/montana.jpg alt=Montaña width=320 height=213>\n<BR>\n"
        '<IMG SRC=/fotos/pueblo.gif ALT="Las casas blancas del pueblo en la ladera de la'
        ' montaña" BORDER=0>\n'
        '<!-- <img src=x.jpg alt="commented out"> -->\n'
        '<!-- banner viejo: <IMG SRC="/fotos/banner-viejo.jpg" ALT="Bienvenidos a nuestra'
        ' página personal"> -->\n'
        "<P><FONT SIZE=2>Última actualización: noviembre de 2026</FONT></P>\n"
        "</BODY>\n</HTML>\n"
    )
    o = "http://www.oldsite.example/fotos/"
    return Page("http://www.oldsite.example/fotos/galeria.htm", html, "windows-1252",
                "text/html", (
                    ImageSpec(o + "playa.jpg", "JPEG", (320, 213)),
                    ImageSpec(o + "montana.jpg", "JPEG", (320, 213)),
                    ImageSpec(o + "pueblo.gif", "GIF"),
                ))


def _page_russian_header_charset() -> Page:
    """Russian page whose charset (windows-1251) is declared only in the HTTP header."""
    body = (
        "<p>В субботу в городском музее открылась большая выставка современной живописи.</p>\n"
        '<img src="/photo/2026/11/vystavka-zal.jpg" alt="Посетители рассматривают картины на'
        ' новой выставке в городском музее">\n'
        '<img src="/photo/2026/11/hudozhnik.jpg" alt="Молодой художник рассказывает'
        ' журналистам о своей новой работе">\n'
        '<img src="/photo/2026/11/dom-zima.webp" alt="Старинный деревянный дом на берегу'
        ' замёрзшей реки зимой">\n'
    )
    page = _page(NOVOSTI, "/kultura/2026/11/21/vystavka.html", "Новая выставка в музее", body, [
        ImageSpec(NOVOSTI.origin + "/photo/2026/11/vystavka-zal.jpg", "JPEG", (320, 213)),
        ImageSpec(NOVOSTI.origin + "/photo/2026/11/hudozhnik.jpg", "JPEG"),
        ImageSpec(NOVOSTI.origin + "/photo/2026/11/dom-zima.webp", "WEBP"),
    ], meta="")
    return Page(page.url, page.html, "windows-1251", "text/html; charset=windows-1251",
                page.images)


def _page_french_meta_charset() -> Page:
    """French/German page whose charset (iso-8859-1) is declared only in ``<meta charset>``."""
    body = (
        "<p>La recette traditionnelle de la tarte aux pommes, comme chez grand-mère.</p>\n"
        '<img src="/photos/tarte-entiere.jpg" alt="Une tarte aux pommes dorée qui sort du four'
        ' sur la table de la cuisine">\n'
        '<img src="/photos/pommes-tranches.jpg" alt="Les pommes coupées en fines tranches'
        ' avant la cuisson au four">\n'
        '<h2 lang="de">Auf Deutsch</h2>\n<p lang="de">Das Rezept für den klassischen'
        " Apfelkuchen mit Streuseln.</p>\n"
        '<img lang="de" src="/photos/apfelkuchen.jpg" alt="Ein Stück Apfelkuchen mit Sahne auf'
        ' einem weißen Teller">\n'
    )
    p = RECETTES.origin + "/photos/"
    page = _page(RECETTES, "/desserts/tarte-aux-pommes.html", "Tarte aux pommes", body, [
        ImageSpec(p + "tarte-entiere.jpg", "JPEG", (320, 213)),
        ImageSpec(p + "pommes-tranches.jpg", "JPEG"),
        ImageSpec(p + "apfelkuchen.jpg", "JPEG"),
    ], meta='<meta charset="iso-8859-1">')
    return Page(page.url, page.html, "iso-8859-1", "text/html", page.images)


def _page_japanese_http_equiv() -> Page:
    """Japanese page declaring shift_jis via ``<meta http-equiv="Content-Type">``."""
    body = (
        "<p>京都の秋は紅葉の名所がたくさんあります。</p>\n"
        '<img src="/img/kyoto/kiyomizu.jpg" alt="京都の清水寺で紅葉がとても美しく色づいています">\n'
        '<img src="/img/kyoto/arashiyama.jpg" alt="秋の嵐山の竹林の小道を歩く観光客の様子です">\n'
        '<img src="/img/kyoto/matcha.webp" alt="抹茶と和菓子が木のお盆に並べられています">\n'
    )
    meta = '<meta http-equiv="Content-Type" content="text/html; charset=shift_jis">'
    k = NIHON.origin + "/img/kyoto/"
    page = _page(NIHON, "/kyoto/momiji.html", "京都の紅葉", body, [
        ImageSpec(k + "kiyomizu.jpg", "JPEG", (320, 213)),
        ImageSpec(k + "arashiyama.jpg", "JPEG", (213, 320)),
        ImageSpec(k + "matcha.webp", "WEBP"),
    ], meta=meta)
    return Page(page.url, page.html, "shift_jis", "text/html", page.images)


def _page_chinese_relative_base() -> Page:
    """Chinese page with a *relative* ``<base href>`` and a 404 image."""
    body = (
        "<p>长城是中国最著名的名胜古迹之一。</p>\n"
        '<img src="changcheng-qiutian.jpg" alt="长城在秋天的阳光下显得格外壮观和美丽">\n'
        '<img src="badaling.webp" alt="许多游客正在八达岭长城上慢慢地往上爬">\n'
        '<img src="shanhaiguan-old.jpg" alt="山海关城楼的一张老照片现在已经找不到了">\n'
    )
    b = ZHONGWEN.origin + "/lvyou/images/2026/"
    return _page(ZHONGWEN, "/lvyou/changcheng.html", "游览长城", body, [
        ImageSpec(b + "changcheng-qiutian.jpg", "JPEG", (320, 213)),
        ImageSpec(b + "badaling.webp", "WEBP"),
        ImageSpec(b + "shanhaiguan-old.jpg", "JPEG", status=404),
    ], head='<base href="/lvyou/images/2026/">\n')


def _page_arabic() -> Page:
    """Right-to-left Arabic page."""
    body = (
        "<p>جولة في الأسواق القديمة قبل بداية موسم الشتاء.</p>\n"
        '<img src="/media/souq-1.jpg" alt="سوق تقليدي مزدحم بالناس في وسط المدينة القديمة">\n'
        '<img src="/media/souq-2.jpg" alt="بائع يعرض التوابل الملونة في أكياس كبيرة أمام'
        ' متجره">\n'
        '<img src="/media/souq-3.webp" alt="فوانيس نحاسية معلقة في ممر ضيق داخل السوق">\n'
    )
    m = AKHBAR.origin + "/media/"
    return _page(AKHBAR, "/ar/2026/11/souq.html", "جولة في السوق القديم", body, [
        ImageSpec(m + "souq-1.jpg", "JPEG", (320, 213)),
        ImageSpec(m + "souq-2.jpg", "JPEG"),
        ImageSpec(m + "souq-3.webp", "WEBP", (160, 240)),
    ], html_attrs=' dir="rtl"')


def _page_marathon() -> Page:
    """Extreme aspect ratios, an animated GIF and a PNG served as ``image/jpeg`` (German)."""
    body = (
        "<p>Mehr als zehntausend Läuferinnen und Läufer gingen am Sonntag an den Start.</p>\n"
        '<img src="/bilder/sport/marathon-start.jpg" alt="Tausende Läufer warten am frühen'
        ' Morgen auf den Startschuss des Marathons">\n'
        '<img src="/bilder/sport/ziel.jpg" alt="Die glückliche Siegerin überquert nach gut'
        ' zwei Stunden die Ziellinie">\n'
        '<img src="/bilder/sport/laeufer-animation.gif" alt="Animation eines Läufers, der mit'
        ' großen Schritten über die Strecke rennt">\n'
        '<img src="/werbung/banner-1200x40.jpg" width="1200" height="40" alt="Werbebanner für'
        ' den nächsten Stadtmarathon im kommenden Frühjahr">\n'
        '<img src="/werbung/skyscraper.png" width="40" height="800" alt="Senkrechtes'
        ' Werbebanner für Laufschuhe und Sportbekleidung im Angebot">\n'
    )
    o = NEWS.origin
    return _page(NEWS, "/sport/2026/11/20/marathon.html", "Rekord beim Stadtmarathon", body, [
        ImageSpec(o + "/bilder/sport/marathon-start.jpg", "JPEG", (320, 213)),
        ImageSpec(o + "/bilder/sport/ziel.jpg", "PNG", served_as="image/jpeg"),
        ImageSpec(o + "/bilder/sport/laeufer-animation.gif", "AGIF", (96, 96)),
        ImageSpec(o + "/werbung/banner-1200x40.jpg", "JPEG", (1200, 40), noise=0.1),
        ImageSpec(o + "/werbung/skyscraper.png", "PNG", (40, 800)),
    ])


def _page_duplicates() -> Page:
    """Repeats (url, alt) pairs of other pages and reuses a URL with a different alt."""
    body = (
        "<p>The breakfast bundle: kettle, toaster and two mugs.</p>\n"
        '<img src="/catalog/kitchen/img/kettle-front.jpg" alt="Stainless steel electric kettle'
        ' seen from the front">\n'
        '<img src="https://cdn.example.net/shop/kettle-box.jpg" alt="Gift wrapped kettle box'
        ' with a red ribbon for the holidays">\n'
        '<img src="/media/toaster.jpg" alt="Chrome two slice toaster with golden brown'
        ' toast">\n'
        '<img src="/media/mug-blue.jpg" alt="Tom &amp; Jerry&#8217;s caf&eacute; mug'
        ' &quot;Classic&quot; in ocean blue">\n'
    )
    o = SHOP.origin
    return _page(SHOP, "/catalog/kitchen/breakfast-bundle.html", "Breakfast bundle", body, [
        ImageSpec(o + "/catalog/kitchen/img/kettle-front.jpg", "JPEG", (320, 213)),
        ImageSpec("https://cdn.example.net/shop/kettle-box.jpg", "JPEG", (240, 180)),
        ImageSpec(o + "/media/toaster.jpg", "JPEG"),
        ImageSpec(o + "/media/mug-blue.jpg", "JPEG", (240, 240)),
    ])


# Order matters: slot k goes to file k % n_files, so with 4 files the two shop pages that
# share (url, alt) pairs (relative-urls/alt-edge-cases vs duplicates) land in different files.
FEATURE_PAGES: tuple[Callable[[], Page], ...] = (
    _page_relative_urls, _page_base_href, _page_srcset, _page_lazy,
    _page_alt_edge_cases, _page_pixels_and_schemes, _page_old_school,
    _page_russian_header_charset, _page_french_meta_charset, _page_japanese_http_equiv,
    _page_chinese_relative_base, _page_arabic, _page_marathon, _page_duplicates,
)
FEATURE_PAGE_COUNT = len(FEATURE_PAGES)


# --------------------------------------------------------------------------- extras

_CSS = b"""body { font-family: sans-serif; margin: 0 auto; max-width: 60em; }
.logo { height: 48px; }
.hero { background: url(/media/hero.jpg) no-repeat; }
"""
_JS = b"""(function () {
  var html = '<img src="/wp-content/uploads/from-script.jpg" alt="Image written by a script">';
  document.querySelectorAll("img.lazyload").forEach(function (img) {
    img.src = img.dataset.src || img.src;
  });
  window.__sample = html;
})();
"""
_PDF = (
    b"%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
    b"2 0 obj << /Type /Pages /Kids [] /Count 0 >> endobj\n"
    b'% <img src="/photos/in-pdf.jpg" alt="not html">\n'
    b"trailer << /Root 1 0 R >>\n%%EOF\n"
)
_REDIRECT_TARGET = "http://news.example.org/2026/11/21/stadtfest.html"
_REDIRECT_BODY = (
    f'<html><body><p>Moved to <a href="{_REDIRECT_TARGET}">{_REDIRECT_TARGET}</a></p>'
    '<img src="/static/moved.png" alt="This page has moved permanently to a new address">'
    "</body></html>\n"
).encode("ascii")

EXTRAS: tuple[Extra, ...] = (
    Extra("https://www.shop.example/static/site.css", 200, "text/css", _CSS),
    Extra("https://blog.example.com/wp-includes/js/lazyload.min.js", 200,
          "application/javascript", _JS),
    Extra("https://www.recettes.example/livret-recettes.pdf", 200, "application/pdf", _PDF),
    Extra("http://news.example.org/stadtfest", 301, "text/html; charset=utf-8",
          _REDIRECT_BODY, (("Location", _REDIRECT_TARGET),)),
)


# --------------------------------------------------------------------------- filler pages


@dataclass(frozen=True)
class _FillerText:
    """Per-language text pools for filler pages."""

    site: Site
    lang: str
    titles: tuple[str, ...]
    paragraphs: tuple[str, ...]
    alts: tuple[str, ...]


FILLER_TEXT: tuple[_FillerText, ...] = (
    _FillerText(SHOP, "en", ("New arrivals", "Weekend offers", "Customer favourites"), (
        "Free delivery on all orders over fifty pounds this month.",
        "Every product comes with a two year guarantee and easy returns.",
    ), (
        "A red bicycle leaning against a brick wall in the city",
        "Fresh vegetables arranged on a wooden market stall",
        "A cup of coffee next to an open notebook on a desk",
        "An old lighthouse standing on a rocky coast at dusk",
    )),
    _FillerText(NEWS, "de", ("Nachrichten aus der Region", "Wetter am Wochenende"), (
        "Der Gemeinderat hat am Dienstag über den neuen Radweg entschieden.",
        "Am Wochenende wird es sonnig, aber in den Nächten bleibt es kalt.",
    ), (
        "Ein rotes Fahrrad lehnt an einer alten Backsteinmauer",
        "Frisches Gemüse liegt auf einem Marktstand aus Holz",
        "Zwei Kinder spielen im sonnigen Park mit einem Ball",
        "Schneebedeckte Berge spiegeln sich im ruhigen Bergsee",
    )),
    _FillerText(BLOG, "en", ("Notes from the allotment", "A rainy week"), (
        "The autumn light makes every walk through the garden feel slower.",
        "I finally repaired the old greenhouse door before the storms arrived.",
    ), (
        "Two children playing football in a sunny park",
        "Snow covered mountains reflected in a calm lake",
        "A wheelbarrow full of freshly dug potatoes",
    )),
    _FillerText(BLOG, "es", ("Diario de viaje", "Una semana en la costa"), (
        "Los días en la costa empiezan temprano y terminan con una cena tardía.",
        "El mercado del pueblo abre cada sábado por la mañana.",
    ), (
        "Una bicicleta roja apoyada contra una pared de ladrillo",
        "Verduras frescas en un puesto de madera del mercado",
        "Dos niños juegan al fútbol en un parque soleado",
        "Montañas nevadas reflejadas en un lago tranquilo",
    )),
    _FillerText(ZHONGWEN, "zh", ("城市生活", "周末旅行"), (
        "这个周末天气很好，很多人去公园散步。",
        "老城区的小吃街每天晚上都非常热闹。",
    ), (
        "一辆红色自行车靠在城市的砖墙旁边",
        "木制市场摊位上摆放着新鲜的蔬菜和水果",
        "两个孩子在阳光明媚的公园里踢足球",
        "雪山倒映在平静的湖面上非常美丽",
    )),
    _FillerText(AKHBAR, "ar", ("أخبار المدينة", "الطقس هذا الأسبوع"), (
        "افتتحت البلدية حديقة جديدة في الحي الشمالي يوم الثلاثاء.",
        "من المتوقع أن يكون الطقس معتدلا خلال عطلة نهاية الأسبوع.",
    ), (
        "دراجة حمراء مستندة إلى جدار من الطوب في المدينة",
        "خضروات طازجة معروضة على طاولة خشبية في السوق",
        "طفلان يلعبان كرة القدم في حديقة مشمسة",
        "جبال مغطاة بالثلوج تنعكس على سطح بحيرة هادئة",
    )),
)

_FILLER_SIZES = ((240, 160), (200, 200), (160, 240), (320, 213), (280, 180))
_FILLER_FORMATS = (("JPEG", "jpg"), ("JPEG", "jpg"), ("JPEG", "jpg"), ("WEBP", "webp"),
                   ("PNG", "png"))


def _filler_image(rng: random.Random, text: _FillerText, stem: str) -> tuple[ImageSpec, str]:
    """A filler image: a shared stock (url, alt) pair or a fresh image with a pooled alt."""
    if rng.random() < 0.25:
        return rng.choice(STOCK_PAIRS)
    fmt, ext = rng.choice(_FILLER_FORMATS)
    spec = ImageSpec(f"{text.site.origin}/media/{stem}.{ext}", fmt, rng.choice(_FILLER_SIZES),
                     noise=rng.choice((0.15, 0.2, 0.3)))
    return spec, rng.choice(text.alts)


def _img_markup(rng: random.Random, url: str, alt: str) -> str:
    """One ``<img>`` in a randomly chosen (ordinary) style."""
    style = rng.randrange(3)
    if style == 0:
        return f'<img src="{url}" alt="{alt}">\n'
    if style == 1:
        return f'<figure><img src="{url}" alt="{alt}"><figcaption>{alt}</figcaption></figure>\n'
    return f'<p><img src="{url}" alt="{alt}" loading="lazy"></p>\n'


def _filler_page(rng: random.Random, file_index: int, slot: int) -> Page:
    """A seeded filler page on one of the UTF-8 sites."""
    text = rng.choice(FILLER_TEXT)
    stem = f"{text.lang}-{file_index}-{slot}"
    images = [_filler_image(rng, text, f"{stem}-{j}") for j in range(rng.randint(1, 3))]
    body = "".join(f"<p>{p}</p>\n" for p in rng.sample(text.paragraphs, 2))
    body += "".join(_img_markup(rng, spec.url, alt) for spec, alt in images)
    path = f"/{text.lang}/articles/{stem}.html"
    html = _layout(text.site, rng.choice(text.titles), body, lang=text.lang)
    specs = text.site.images() + tuple(spec for spec, _ in images)
    return Page(text.site.origin + path, html, images=specs)


def plan_pages(seed: int, n_files: int, pages_per_file: int) -> list[list[Page]]:
    """Assign feature pages round-robin to slots, fill the rest, shuffle within each file."""
    rng = random.Random(f"sample-drop:{seed}:pages")
    files: list[list[Page]] = [[] for _ in range(n_files)]
    for slot in range(n_files * pages_per_file):
        file_index = slot % n_files
        if slot < FEATURE_PAGE_COUNT:
            page = FEATURE_PAGES[slot]()
        else:
            page = _filler_page(rng, file_index, slot)
        files[file_index].append(page)
    for pages in files:
        rng.shuffle(pages)
    return files


# --------------------------------------------------------------------------- images


def _pixels(size: tuple[int, int], rng: random.Random, noise: float, block: int) -> Image.Image:
    """A colour gradient blended with seeded (block) noise, so images don't compress away."""
    w, h = size
    grad = Image.linear_gradient("L")
    base = Image.merge("RGB", (
        grad.resize((w, h)),
        grad.transpose(Image.Transpose.ROTATE_90).resize((w, h)),
        Image.new("L", (w, h), rng.randrange(256)),
    ))
    nw, nh = max(1, w // block), max(1, h // block)
    noise_img = Image.frombytes("RGB", (nw, nh), rng.randbytes(nw * nh * 3))
    return Image.blend(base, noise_img.resize((w, h), Image.Resampling.NEAREST), noise)


def render_image(spec: ImageSpec, seed: int) -> bytes:
    """Encode the image for ``spec``; bytes depend only on ``seed`` and the URL."""
    rng = random.Random(f"sample-drop:{seed}:image:{spec.url}")
    buf = io.BytesIO()
    if spec.fmt == "PIXEL":
        Image.new("P", (1, 1), 0).save(buf, "GIF", transparency=0)
        return buf.getvalue()
    block = spec.block or (4 if spec.fmt in ("PNG", "GIF", "AGIF") else 1)
    if spec.fmt == "AGIF":
        frames = [_pixels(spec.size, rng, spec.noise, block).quantize(64) for _ in range(4)]
        frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=120,
                       loop=0)
        return buf.getvalue()
    img = _pixels(spec.size, rng, spec.noise, block)
    if spec.fmt == "GIF":
        img = img.quantize(64)
    options = {"JPEG": {"quality": 85}, "WEBP": {"quality": 80}}.get(spec.fmt, {})
    img.save(buf, spec.fmt, **options)
    return buf.getvalue()


# --------------------------------------------------------------------------- WARC writing


def _payload_digest(body: bytes) -> str:
    """WARC-style ``sha1:<base32>`` digest."""
    return "sha1:" + base64.b32encode(hashlib.sha1(body).digest()).decode("ascii")


def _host_ip(url: str) -> str:
    """A stable fake address in TEST-NET-1 (192.0.2.0/24) for the URL's host."""
    host = urlsplit(url).hostname or ""
    return f"192.0.2.{zlib.crc32(host.encode()) % 254 + 1}"


_REASONS = {200: "OK", 301: "Moved Permanently", 404: "Not Found"}


class _WarcRecorder:
    """Writes records to one WARC file with seeded record ids and a ticking fixed clock."""

    def __init__(self, fh: BinaryIO, rng: random.Random, start: datetime) -> None:
        self.writer = WARCWriter(fh, gzip=True, warc_version="1.0")
        self.rng = rng
        self.clock = start
        self.warcinfo_id = ""

    def _new_id(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def _tick(self) -> datetime:
        self.clock += timedelta(seconds=1)
        return self.clock

    def _warc_headers(self, rtype: str, date: datetime, **extra: str) -> dict[str, str]:
        headers = {"WARC-Type": rtype, "WARC-Record-ID": self._new_id(),
                   "WARC-Date": date.strftime("%Y-%m-%dT%H:%M:%SZ")}
        if self.warcinfo_id:
            headers["WARC-Warcinfo-ID"] = self.warcinfo_id
        headers.update({k.replace("_", "-"): v for k, v in extra.items()})
        return headers

    def warcinfo(self, filename: str, crawl: str) -> None:
        """Write the leading ``warcinfo`` record."""
        info = (f"software: laion_assets.sample.drop\r\nformat: WARC File Format 1.0"
                f"\r\nisPartOf: {crawl}\r\ndescription: Synthetic sample crawl drop\r\n"
                f"robots: classic\r\n").encode()
        headers = self._warc_headers("warcinfo", self._tick(), WARC_Filename=filename)
        record = self.writer.create_warc_record(
            "", "warcinfo", payload=io.BytesIO(info), length=len(info),
            warc_content_type="application/warc-fields", warc_headers_dict=headers)
        self.writer.write_record(record)
        self.warcinfo_id = headers["WARC-Record-ID"]

    def request(self, url: str) -> tuple[str, datetime]:
        """Write a GET ``request`` record; return its id and date."""
        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        http = StatusAndHeaders(f"GET {target} HTTP/1.1", [
            ("Host", parts.netloc), ("User-Agent", USER_AGENT), ("Accept", "*/*"),
        ], is_http_request=True)
        date = self._tick()
        headers = self._warc_headers("request", date, WARC_IP_Address=_host_ip(url))
        record = self.writer.create_warc_record(url, "request", warc_headers_dict=headers,
                                                http_headers=http)
        self.writer.write_record(record)
        return headers["WARC-Record-ID"], date

    @staticmethod
    def _http(status: int, ctype: str, length: int, date: datetime,
              extra: tuple[tuple[str, str], ...] = ()) -> StatusAndHeaders:
        headers = [("Date", format_datetime(date, usegmt=True)), ("Server", "nginx"),
                   ("Content-Type", ctype), ("Content-Length", str(length)), *extra]
        return StatusAndHeaders(f"{status} {_REASONS[status]}", headers, protocol="HTTP/1.1")

    def response(self, url: str, status: int, ctype: str, body: bytes, *,
                 extra: tuple[tuple[str, str], ...] = (), concurrent_to: str = "",
                 date: datetime | None = None) -> _Capture:
        """Write a ``response`` record; return where it was captured."""
        date = date or self._tick()
        more = {"WARC_Concurrent_To": concurrent_to} if concurrent_to else {}
        headers = self._warc_headers("response", date, WARC_IP_Address=_host_ip(url), **more)
        http = self._http(status, ctype, len(body), date, extra)
        record = self.writer.create_warc_record(
            url, "response", payload=io.BytesIO(body), length=len(body),
            warc_headers_dict=headers, http_headers=http)
        self.writer.write_record(record)
        return _Capture(headers["WARC-Record-ID"], headers["WARC-Date"], _payload_digest(body))

    def revisit(self, spec: ImageSpec, length: int, original: _Capture) -> None:
        """Write an identical-payload-digest ``revisit`` record for an earlier capture."""
        date = self._tick()
        headers = self._warc_headers(
            "revisit", date, WARC_IP_Address=_host_ip(spec.url),
            WARC_Refers_To=original.record_id)
        record = self.writer.create_revisit_record(
            spec.url, original.digest, spec.url, original.date,
            http_headers=self._http(200, spec.content_type, length, date),
            warc_headers_dict=headers)
        self.writer.write_record(record)


_NOT_FOUND = (
    b"<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>\n"
)


@dataclass
class _DropState:
    """Cross-file state: first captures (for revisits), image cache, counters."""

    seed: int
    first: dict[str, _Capture] = field(default_factory=dict)
    cache: dict[str, bytes] = field(default_factory=dict)
    image_records: int = 0

    def image(self, spec: ImageSpec) -> bytes:
        """Rendered bytes for ``spec`` (cached by URL, so repeats are identical)."""
        if spec.url not in self.cache:
            self.cache[spec.url] = render_image(spec, self.seed)
        return self.cache[spec.url]


def _write_image(rec: _WarcRecorder, state: _DropState, spec: ImageSpec) -> None:
    """Capture one image: 404 page, revisit of an earlier file's capture, or the bytes."""
    if spec.status == 404:
        rec.response(spec.url, 404, "text/html", _NOT_FOUND)
        return
    body = state.image(spec)
    if spec.revisit and spec.url in state.first:
        rec.revisit(spec, len(body), state.first[spec.url])
        return
    capture = rec.response(spec.url, 200, spec.content_type, body)
    state.first.setdefault(spec.url, capture)
    state.image_records += 1


def _write_page(rec: _WarcRecorder, state: _DropState, page: Page, seen: set[str]) -> None:
    """Capture a page (request + response) followed by its not-yet-captured images."""
    request_id, date = rec.request(page.url)
    rec.response(page.url, 200, page.content_type, page.html.encode(page.encoding),
                 concurrent_to=request_id, date=date)
    for spec in page.images:
        if spec.url not in seen:
            seen.add(spec.url)
            _write_image(rec, state, spec)


def _write_extra(rec: _WarcRecorder, extra: Extra) -> None:
    """Capture a non-page resource (request + response)."""
    request_id, date = rec.request(extra.url)
    rec.response(extra.url, extra.status, extra.content_type, extra.body,
                 extra=extra.headers, concurrent_to=request_id, date=date)


def _records(pages: list[Page], extras: list[Extra]) -> Iterator[Page | Extra]:
    """Interleave a file's extras after its first page."""
    yield from pages[:1]
    yield from extras
    yield from pages[1:]


def _write_warc(path: Path, index: int, crawl: str, pages: list[Page], extras: list[Extra],
                state: _DropState) -> None:
    """Write one WARC file."""
    rng = random.Random(f"sample-drop:{state.seed}:ids:{index}")
    seen: set[str] = set()
    with path.open("wb") as fh:
        rec = _WarcRecorder(fh, rng, START_DATE + timedelta(hours=index))
        rec.warcinfo(path.name, crawl)
        for item in _records(pages, extras):
            if isinstance(item, Page):
                _write_page(rec, state, item, seen)
            else:
                _write_extra(rec, item)


def write_sample_drop(drop_dir: str | Path, *, seed: int = 0, n_files: int = 4,
                      pages_per_file: int = 12, extra_pages: Sequence[Page] = ()) -> SampleDrop:
    """Write a deterministic Common-Crawl-shaped sample drop into ``drop_dir``.

    The crawl name is ``drop_dir``'s folder name. Existing files of the same names are
    overwritten (others are left alone; ``warc.paths.gz`` is the authoritative listing).
    ``pages`` counts the ``200 text/html`` page responses and ``image_records`` the ``200``
    image responses (404s and revisit records excluded). Same seed, same bytes.
    `extra_pages` (e.g. pages that plant test cases) are appended to the first file.
    """
    if n_files < 1 or pages_per_file < 1:
        raise ValueError("n_files and pages_per_file must be >= 1")
    drop = Path(drop_dir)
    crawl = drop.absolute().name
    warc_dir = drop / "segments" / SEGMENT / "warc"
    warc_dir.mkdir(parents=True, exist_ok=True)
    state = _DropState(seed)
    plan = plan_pages(seed, n_files, pages_per_file)
    plan[0].extend(extra_pages)
    warc_files: list[Path] = []
    for index, pages in enumerate(plan):
        path = warc_dir / f"{crawl}-{FILE_TIMESTAMP}-{index:05d}.warc.gz"
        _write_warc(path, index, crawl, pages, list(EXTRAS[index::n_files]), state)
        warc_files.append(path)
    listing = "".join(f"{p.relative_to(drop).as_posix()}\n" for p in warc_files)
    (drop / LISTING_NAME).write_bytes(gzip.compress(listing.encode("ascii"), mtime=0))
    return SampleDrop(drop, crawl, warc_files, n_files * pages_per_file + len(extra_pages),
                      state.image_records)
