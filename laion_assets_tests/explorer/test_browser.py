"""The explorer in a real browser (Playwright + Debian's Chromium, as the Dagster UI tests) on
a real uvicorn server on loopback, over conftest's sample release (one image hash-listed).
One server and one browser for the module."""

import threading
import time
from pathlib import Path

import pytest
import uvicorn

from laion_assets.explorer.app import Explorer, build_app
from laion_assets.pipeline.formats.warc import read_record_at
from laion_assets.pipeline.formats.webdataset import url_key
from laion_assets.pipeline.safety.takedowns import read_ledger
from laion_assets_tests.explorer.conftest import NAME, PLANTED_URL, TOKEN
from laion_assets_tests.ui.conftest import CHROMIUM, CHROMIUM_ARGS, free_port

TIMEOUT_MS = 60_000


class LoopbackServer:
    """uvicorn serving the explorer app in a thread, on a free loopback port."""

    def __init__(self, explorer: Explorer) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(build_app(explorer), host="127.0.0.1", port=self.port,
                                log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> "LoopbackServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def explorer(sample_release):
    return Explorer(sample_release.store, NAME, operator_token=TOKEN)


@pytest.fixture(scope="module")
def page(explorer):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with scripts/system-packages.sh",
                    pytrace=False)
    from playwright.sync_api import sync_playwright

    with LoopbackServer(explorer) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=server.url)
            page.set_default_timeout(TIMEOUT_MS)
            yield page
        finally:
            browser.close()


def search(page, query: str = "", *, safe: bool = True, k: int = 24, **filters) -> list:
    """Fill the search form, submit it, and wait for the grid; the result cells."""
    page.goto("/")
    page.fill("#q", query)
    page.set_checked("#safe", safe)
    page.fill("#k", str(k))
    for name, value in filters.items():
        page.fill(f"#{name}", str(value))
    with page.expect_response("**/api/search?*"):
        page.click("#search button")
    page.wait_for_function("document.getElementById('status').textContent.includes('results')")
    return page.locator(".result").all()


def test_text_search_shows_a_grid_and_says_untrained_search_means_nothing(page, explorer):
    cells = search(page, "a sunny beach")
    visible = sum(explorer.safe(explorer.row(r)) for r in range(len(explorer.index)))
    assert len(cells) == min(24, visible) > 0
    banner = page.inner_text("#model")
    assert "untrained CLIP model" in banner and "not meaningful" in banner
    assert explorer.model["model"] in banner and "weights sha256 untrained" in banner
    first = cells[0].locator("img")
    first.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                           arg=first.element_handle())
    assert cells[0].locator("div").first.inner_text() == explorer.row(
        int(cells[0].get_attribute("data-row")))["TEXT"]


def test_the_detail_panel_shows_the_warc_record(page, explorer):
    cells = search(page, "kettle")
    row = explorer.row(int(cells[0].get_attribute("data-row")))
    cells[0].click()
    page.locator("#detail-warc").wait_for()

    def field(name: str) -> str:
        return page.inner_text(f"#detail-warc [data-field={name}]")

    warc_file, offset = field("warc_file"), int(field("warc_record_offset"))
    with open(warc_file, "rb") as handle:  # the panel names the page capture the pair came from
        record = read_record_at(handle, offset)
    assert record.headers["warc-record-id"] == field("warc_record_id")
    assert record.headers["warc-target-uri"] == field("page_url")
    assert row["URL"] in page.inner_text("#detail") and record.rec_type == "response"
    assert page.inner_text("#detail-scores [data-field=decision]") == "passed"
    assert "extracted_pairs" in page.inner_text("#detail-runs")


def test_more_like_this_and_a_language_filter(page, explorer):
    cells = search(page, "x", safe=False)
    target = cells[3].get_attribute("data-row")
    with page.expect_response("**/api/search?like=*"):
        cells[3].locator("button.more").click()
    page.wait_for_function(f"document.querySelector('.result')?.dataset.row === '{target}'")
    german = search(page, "x", safe=False, k=200, language="de")
    expected = sum(explorer.row(r)["LANGUAGE"] == "de" for r in range(len(explorer.index)))
    assert len(german) == expected > 0
    assert {c.get_attribute("data-language") for c in german} == {"de"}


def test_the_audit_view_lists_the_exclusions_with_their_reasons(page, explorer):
    page.goto("/audit")
    for rule, count in explorer.rule_counts().items():
        assert page.inner_text(f"#rule-{rule}") == f"{rule} ({count})"
    shown = explorer.exclusions_by_rule()
    assert {"not_fetched", "aspect_ratio"} & set(shown), shown.keys()
    for rule, items in shown.items():
        cells = page.locator(f'.excluded[data-rule="{rule}"]')
        assert cells.count() == len(items)
        reasons = [c.inner_text() for c in cells.locator(".reason").all()]
        assert reasons == [e["detail"] for e in items]


def test_a_hash_listed_image_never_appears(page, explorer):
    key = url_key(PLANTED_URL)
    everything = search(page, "sunset over a beach", safe=False, k=200)
    assert len(everything) == len(explorer.index)
    assert key not in {c.get_attribute("data-key") for c in everything}
    page.goto("/audit")
    assert page.inner_text("#rule-hash_list") == "hash_list (1)"
    sources = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.src)")
    assert sources and not any(key in s for s in sources)
    assert PLANTED_URL not in page.content()
    shard = next(e["shard"] for e in explorer.exclusions if e["rule"] == "hash_list")
    assert page.request.get(f"/image/{shard.replace('/', '~')}/{key}").status == 404


def test_removal_writes_a_ledger_entry_only_with_the_token(page, explorer):
    store = explorer.store
    cells = search(page, "mug", safe=False)
    row = explorer.row(int(cells[0].get_attribute("data-row")))
    cells[0].click()
    page.locator("#removal").wait_for()
    before = len(read_ledger(store))
    for token in ("", "not-the-token"):
        page.fill("#token", token)
        page.fill("#reason", "audit request")
        page.click("#removal button")
        page.wait_for_function("document.getElementById('removal-status').textContent")
        assert page.inner_text("#removal-status").startswith("Refused: operator token")
        assert len(read_ledger(store)) == before
        page.evaluate("document.getElementById('removal-status').textContent = ''")
    page.fill("#token", TOKEN)
    page.click("#removal button")
    page.wait_for_function("document.getElementById('removal-status').textContent")
    entries = read_ledger(store)
    assert len(entries) == before + 1
    entry = entries[-1]
    assert (entry.kind, entry.value, entry.reason) == ("url", row["URL"], "audit request")
    assert page.inner_text("#removal-status").startswith(f"Takedown {entry.id} written")


def test_search_by_an_uploaded_image(page, explorer, tmp_path):
    row = explorer.row(2)
    upload = tmp_path / "query.jpg"
    upload.write_bytes(explorer.image(row["shard"], row["key"]))
    page.goto("/")
    page.set_checked("#safe", False)
    with page.expect_response("**/api/search?*"):
        page.set_input_files("#image", str(upload))
    page.wait_for_function("document.getElementById('status').textContent.includes('results')")
    assert page.locator(".result").first.get_attribute("data-row") == "2"
