"""The hand-written feature pages: every awkward case extraction must handle.

Relative/protocol-relative URLs, ``<base href>``, ``srcset``/``<picture>``, lazy-loading
attributes, entity-laden and degenerate alt texts, tracking pixels, ``data:``/``javascript:``/
``mailto:`` sources, ``<noscript>`` and commented-out images, uppercase/unquoted markup,
pages in windows-1251 / iso-8859-1 / shift_jis / undeclared windows-1252, alt texts in eight
languages. ``FEATURE_PAGES`` lists them in slot order.
"""

from __future__ import annotations

from collections.abc import Callable

from laion_assets.sample.catalogue import (
    AKHBAR,
    BLOG,
    NEWS,
    NIHON,
    NOVOSTI,
    PLACEHOLDER_GIF,
    RECETTES,
    SHOP,
    ZHONGWEN,
    ImageSpec,
    Page,
    check_png_data_uri,
    site_page,
)


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
    return site_page(SHOP, "/catalog/kitchen/kettle.html", "Electric kettle 1.7 l", body, [
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
    return site_page(NEWS, "/2026/11/21/stadtfest.html", "Tausende feiern das Stadtfest", body, [
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
    return site_page(BLOG, "/2026/11/viaje-a-sevilla/", "Viaje a Sevilla", body, [
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
    return site_page(BLOG, "/2026/10/garden-diary/", "Garden diary: October", body, [
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
    return site_page(SHOP, "/catalog/mugs/index.html", "Mugs &amp; cups", body, [
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
        f'<img src="{check_png_data_uri()}" alt="Small green check mark confirming that your'
        ' order was received">\n'
        '<a href="javascript:window.print()"><img src="javascript:void(0)" alt="Click here'
        ' to print your receipt for your records"></a>\n'
        '<a href="mailto:orders@shop.example"><img src="mailto:orders@shop.example"'
        ' alt="Send an email to our friendly customer service team"></a>\n'
        f'<img src="{pixel}" width="1" height="1" alt="Thank you for shopping with us'
        ' today">\n'
        f'<img src="{pixel}&amp;step=2" width="1" height="1" style="display:none">\n'
    )
    return site_page(SHOP, "/checkout/thanks.html", "Order confirmed", body, [
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
    page = site_page(NOVOSTI, "/kultura/2026/11/21/vystavka.html", "Новая выставка в музее", body, [
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
    page = site_page(RECETTES, "/desserts/tarte-aux-pommes.html", "Tarte aux pommes", body, [
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
    page = site_page(NIHON, "/kyoto/momiji.html", "京都の紅葉", body, [
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
    return site_page(ZHONGWEN, "/lvyou/changcheng.html", "游览长城", body, [
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
    return site_page(AKHBAR, "/ar/2026/11/souq.html", "جولة في السوق القديم", body, [
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
    return site_page(NEWS, "/sport/2026/11/20/marathon.html", "Rekord beim Stadtmarathon", body, [
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
    return site_page(SHOP, "/catalog/kitchen/breakfast-bundle.html", "Breakfast bundle", body, [
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
