"""The sample drop's vocabulary: image specs, pages, non-page captures, the fake sites and
their page template.

Only reserved example domains are used (``*.example``, ``example.com/.net/.org``).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

from PIL import Image

PLACEHOLDER_GIF = (
    "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
)
MIME_BY_FORMAT = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "AGIF": "image/gif",
    "PIXEL": "image/gif",
}


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


def _logo(origin: str, path: str) -> ImageSpec:
    """The 180×50 PNG logo the four language sites share in shape."""
    return ImageSpec(origin + path, "PNG", (180, 50), block=2)


NOVOSTI = Site("https://novosti.example.net", "Новости Пример", "ru",
               _logo("https://novosti.example.net", "/i/logo.png"),
               "Логотип сайта Новости Пример синего цвета")
NIHON = Site("https://www.nihon.example", "日本サンプル", "ja",
             _logo("https://www.nihon.example", "/img/logo.png"),
             "日本サンプル旅行ガイドのロゴ画像です")
ZHONGWEN = Site("https://www.zhongwen.example", "中文示例", "zh",
                _logo("https://www.zhongwen.example", "/static/logo.png"),
                "中文示例旅游网站的红色标志图片")
AKHBAR = Site("https://akhbar.example.org", "أخبار المثال", "ar",
              _logo("https://akhbar.example.org", "/static/logo.png"),
              "شعار موقع أخبار المثال باللون الأخضر")

STOCK_PAIRS: tuple[tuple[ImageSpec, str], ...] = (
    (ImageSpec("https://cdn.example.net/stock/sunset-beach.jpg", "JPEG", (320, 213)),
     "Golden sunset over a quiet sandy beach with gentle waves"),
    (ImageSpec("https://cdn.example.net/stock/city-night.jpg", "JPEG", (320, 213)),
     "A busy city street at night with bright neon signs"),
    (ImageSpec("https://cdn.example.net/stock/forest-path.webp", "WEBP", (240, 160)),
     "A narrow path winding through a green summer forest"),
)


# --------------------------------------------------------------------------- markup


def layout(site: Site, title: str, body: str, *, head: str = "", lang: str = "",
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


def site_page(site: Site, path: str, title: str, body: str, images: list[ImageSpec],
          **kwargs: str) -> Page:
    """Build a UTF-8 page on ``site`` whose captures are the template and ``images``."""
    html = layout(site, title, body, **kwargs)
    return Page(site.origin + path, html, images=site.images() + tuple(images))


def check_png_data_uri() -> str:
    """A tiny inline PNG (green square) as a ``data:`` URI."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (40, 160, 60)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


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
