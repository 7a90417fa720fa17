"""Screenshots of the audit explorer for the README: docs/screenshots/explorer-*.png.

Builds the offline demo release in a scratch folder (the sample drop, one of its images put on
an md5 hash list as a partner list would carry it, release v1 and its kNN index), serves it
with uvicorn on loopback, and drives Debian's Chromium with Playwright:

    .venv/bin/python scripts/explorer_screenshots.py [--workdir DIR] [--files N]

explorer-search.png (text search, the grid), explorer-detail.png (a row's detail panel: the
WARC record, fetch, scores, runs, the removal form), explorer-audit.png (exclusions by rule).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--no-first-run", "--disable-sync"]
NAME = "laion-assets"
PLANTED_URL = "https://cdn.example.net/stock/sunset-beach.jpg"
TOKEN = "screenshot-operator"


def build_release(work: Path, files: int):
    """The sample drop's first `files` WARC files materialized, release v1 and its index."""
    from dagster import instance_for_test

    from laion_assets.definitions import build_definitions
    from laion_assets.defs.headless import cut_release, materialize_drop
    from laion_assets.pipeline.release.knn import build_index
    from laion_assets.sample.drop import captured_body, write_sample_drop
    from laion_assets.settings import OFFLINE, Settings

    drop = work / "drops" / "CC-MAIN-SAMPLE"
    write_sample_drop(drop, seed=0)
    listing = gzip.decompress((drop / "warc.paths.gz").read_bytes()).decode().split()
    (drop / "warc.paths.gz").write_bytes(gzip.compress("".join(
        f"{line}\n" for line in listing[:files]).encode()))
    listed = work / "store" / "safety" / "hash_lists" / "md5" / "partner.txt"
    listed.parent.mkdir(parents=True, exist_ok=True)
    listed.write_text(hashlib.md5(captured_body(drop, PLANTED_URL)).hexdigest() + "\n")
    settings = Settings(profile=OFFLINE, store=str(work / "store"), drops=str(work / "drops"),
                        shard_size=1, listing_base=None, s3_endpoint=None,
                        fetch_sources=("replay",), clip_pretrained=None,
                        similarity_mode="off")
    defs = build_definitions(settings)
    with instance_for_test() as instance:
        runs = materialize_drop(str(drop), defs, instance, log=print)
        if not all(r.success for r in runs):
            raise SystemExit("the sample drop did not materialize")
        if not cut_release(defs, instance, {"name": NAME})[0]:
            raise SystemExit("the release run failed")
    store = defs.resources["dataset_store"].store()
    build_index(store, NAME, 1)
    return store


def serve(store):
    """uvicorn in a thread on a free loopback port; (server, its thread, base URL)."""
    import socket

    import uvicorn

    from laion_assets.explorer.app import Explorer, build_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    explorer = Explorer(store, NAME, operator_token=TOKEN,
                        dagster_url="http://127.0.0.1:3000")
    server = uvicorn.Server(uvicorn.Config(build_app(explorer), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def wait_for_images(page) -> None:
    page.wait_for_function("[...document.images].every(i => i.complete)")
    page.wait_for_timeout(300)


def take(base: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shots = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, base_url=base)
        page.set_default_timeout(120_000)
        page.goto("/")
        page.fill("#q", "a kettle on a kitchen table")
        page.click("#search button")
        page.locator(".result").first.wait_for()
        wait_for_images(page)
        shots.append(SCREENSHOTS / "explorer-search.png")
        page.screenshot(path=str(shots[-1]))
        page.locator(".result").nth(1).click()
        page.locator("#removal").wait_for()
        page.fill("#reason", "rights holder request")
        page.locator("#detail").scroll_into_view_if_needed()
        shots.append(SCREENSHOTS / "explorer-detail.png")
        page.locator("#detail").screenshot(path=str(shots[-1]))
        page.goto("/audit")
        wait_for_images(page)
        shots.append(SCREENSHOTS / "explorer-audit.png")
        page.screenshot(path=str(shots[-1]), full_page=True)
        browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default=None, help="scratch folder (default: a temp one)")
    parser.add_argument("--files", type=int, default=2, help="sample WARC files to materialize")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="explorer-shots-") as scratch:
        work = Path(args.workdir or scratch)
        store = build_release(work, args.files)
        server, thread, base = serve(store)
        try:
            for path in take(base):
                print(f"wrote {path.relative_to(REPO)}")
        finally:
            server.should_exit = True
            thread.join(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
