"""Seeded filler pages on the fake sites, and the plan that deals pages over the files."""

from __future__ import annotations

import random
from dataclasses import dataclass

from laion_assets.sample.catalogue import (
    AKHBAR,
    BLOG,
    NEWS,
    SHOP,
    STOCK_PAIRS,
    ZHONGWEN,
    ImageSpec,
    Page,
    Site,
    layout,
)
from laion_assets.sample.feature_pages import FEATURE_PAGE_COUNT, FEATURE_PAGES


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
    html = layout(text.site, rng.choice(text.titles), body, lang=text.lang)
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
