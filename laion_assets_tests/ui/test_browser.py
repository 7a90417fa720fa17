"""The Dagster UI in a real browser (Playwright + Debian's Chromium) after a crawl backfill.

Each test asserts what an operator reads on a page and saves the page to docs/screenshots/
(the README shows them). `ui_browser` is requested before `crawl_backfill`, so when the
backfill runs during these tests the gpu pool page is captured while CLIP steps queue for it.
"""

from laion_assets_tests.ui.conftest import (
    GPU_POOL,
    LOCATION,
    SHARD_JOB,
    SHARD_KEYS,
    CrawlBackfill,
    UiBrowser,
)


def test_asset_graph_shows_every_asset(ui_browser: UiBrowser, crawl_backfill: CrawlBackfill):
    ui = ui_browser
    ui.open("/asset-groups", "Global asset lineage", "crawl", "scoring")
    names = ui.server.asset_nodes()
    expected = ["/".join(n["assetKey"]["path"]) for n in names]
    shown = _expand_all_groups(ui, expected)
    missing = [name for name in expected if not any(_same_name(name, s) for s in shown)]
    assert not missing, f"not in the asset graph: {missing} (nodes read {shown})"
    ui.screenshot("asset-graph.png")


def test_materialize_dialog_sends_the_backfill_the_tests_send(ui_browser: UiBrowser,
                                                              crawl_backfill: CrawlBackfill):
    """Jobs → shard_pipeline → Materialize all… → All → Launch backfill, request intercepted."""
    ui = ui_browser
    ui.open(f"/locations/{LOCATION}/jobs/{SHARD_JOB}", SHARD_JOB, "Materialize all…")
    ui.page.get_by_role("button", name="Materialize all…").click()
    dialog = ui.page.get_by_role("dialog")
    dialog.get_by_text("Launch runs to materialize").wait_for()
    dialog.get_by_role("button", name="All", exact=True).click()
    dialog.get_by_text(f"{len(SHARD_KEYS)} partitions", exact=True).wait_for()
    ui.screenshot("materialize-dialog.png")

    sent: list[dict] = []

    def intercept(route):
        request = route.request
        if request.method == "POST" and "LaunchPartitionBackfill" in (request.post_data or ""):
            sent.append(request.post_data_json)
            route.abort()  # the shards are the sensor's backfill's already (crawl_backfill)
        else:
            route.continue_()

    ui.page.route("**/graphql*", intercept)
    try:
        dialog.get_by_role("button", name="Launch backfill").click()
        for _ in range(60):
            if sent:
                break
            ui.page.wait_for_timeout(500)
    finally:
        ui.page.unroute("**/graphql*")
    assert sent, "the dialog sent no LaunchPartitionBackfill mutation"
    expected = ui.server.backfill_params(SHARD_JOB, crawl_backfill.assets, SHARD_KEYS)
    assert _normalized(sent[0]["variables"]) == _normalized(expected)
    assert "launchPartitionBackfill(backfillParams: $backfillParams)" in sent[0]["query"]


def test_partitions_page_shows_the_shards(ui_browser: UiBrowser, crawl_backfill: CrawlBackfill):
    ui = ui_browser
    count = len(SHARD_KEYS)
    ui.open("/assets/extracted_pairs?view=partitions", f"{count} Partitions Selected",
            f"Materialized ({count})", "Missing (0)", "Failed (0)", *SHARD_KEYS)
    ui.page.get_by_text(SHARD_KEYS[0], exact=True).first.click()
    for text in ("Latest materialization", "dagster/row_count", "dropped_by_reason"):
        ui.expect_text(text)
    ui.screenshot("asset-partitions.png")


def test_safety_asset_page_shows_the_tables(ui_browser: UiBrowser,
                                            crawl_backfill: CrawlBackfill):
    """A shard's safety_filtered_pairs: exclusions by rule and score bins as tables."""
    ui = ui_browser
    ui.open("/assets/safety_filtered_pairs?view=partitions", *SHARD_KEYS)
    ui.page.get_by_text(SHARD_KEYS[0], exact=True).first.click()
    for text in ("Latest materialization", "excluded_by_rule_table", "punsafe_bins",
                 "pwatermark_bins", "similarity_bins"):
        ui.expect_text(text)
    ui.page.get_by_text("excluded_by_rule_table", exact=True).first.scroll_into_view_if_needed()
    ui.screenshot("safety-asset.png")
    # the image grid: Dagster renders the markdown's data: URI thumbnails inline
    row = ui.page.locator("tr", has=ui.page.get_by_text("images", exact=True)).first
    row.get_by_text("[Show Markdown]").click()
    ui.expect_text("passed:")
    ui.page.wait_for_timeout(1000)
    sizes = ui.page.evaluate("() => Array.from(document.querySelectorAll('img'))"
                             ".filter(i => i.src.startsWith('data:image/jpeg'))"
                             ".map(i => Math.max(i.naturalWidth, i.naturalHeight))")
    assert sizes and all(0 < size <= 64 for size in sizes), sizes
    ui.screenshot("safety-image-grid.png")
    ui.page.get_by_role("button", name="Close").click()


def test_backfill_page_shows_its_runs(ui_browser: UiBrowser, crawl_backfill: CrawlBackfill):
    ui = ui_browser
    ui.open(f"/runs/b/{crawl_backfill.backfill_id}?tab=runs",
            f"{len(SHARD_KEYS)} partitions", "Succeeded")
    for run in crawl_backfill.backfill_runs:
        ui.expect_text(run["runId"][:8])
    ui.screenshot("backfill.png")


def test_runs_page_lists_the_sensor_backfill_runs(ui_browser: UiBrowser,
                                                  crawl_backfill: CrawlBackfill):
    ui = ui_browser
    ui.open("/runs", "Show runs within backfills")
    ui.page.get_by_text("Show runs within backfills", exact=True).click()
    ui.expect_text("crawl_drop_sensor")
    for run in crawl_backfill.backfill_runs:
        ui.expect_text(run["runId"][:8])
    ui.screenshot("runs.png")


def test_gpu_pool_page_shows_the_limit(ui_browser: UiBrowser, crawl_backfill: CrawlBackfill):
    ui = ui_browser
    if not ui.busy_pool_captured:  # the backfill ran before this browser (another test's)
        ui.open(f"/deployment/concurrency/{GPU_POOL}", "Pool info")
        ui.screenshot("gpu-pool.png")
    ui.open(f"/deployment/concurrency/{GPU_POOL}", "Pool info", "Granularity", "Op", "Limit")
    assert ui.page.get_by_text("(default)", exact=True).first.is_visible()
    limit = ui.page.get_by_role("row").filter(has_text="Limit").first.inner_text()
    assert "1" in limit.split(), limit


def _expand_all_groups(ui: UiBrowser, expected: list[str]) -> list[str]:
    """Expand every group of the lineage graph (⌥E, the UI's shortcut); the node names shown."""
    shown: list[str] = []
    for _ in range(10):  # the shortcut works once the graph has rendered
        shown = ui.page.locator("[class*='assetName']").all_text_contents()
        if len(shown) >= len(expected):
            return shown
        ui.page.keyboard.press("Alt+e")
        ui.page.wait_for_timeout(2000)
    return shown


def _same_name(name: str, shown: str) -> bool:
    """The graph shortens long names in the middle: `safety_filt…_pairs`."""
    if "…" not in shown:
        return shown == name
    head, tail = shown.split("…", 1)
    return name.startswith(head) and name.endswith(tail) and len(name) > len(shown) - 1


def _normalized(variables: dict) -> dict:
    """Backfill variables with their lists sorted (the order of assets means nothing)."""
    params = dict(variables["backfillParams"])
    params["assetSelection"] = sorted(params["assetSelection"], key=lambda k: k["path"])
    params["partitionNames"] = sorted(params["partitionNames"])
    return params
