#!/usr/bin/env bash
# Retake the Dagster UI screenshots in docs/screenshots/: the browser tests start a real
# `dg dev` (its own process group, a temporary DAGSTER_HOME, offline profile), drop the sample
# crawl into the watched folder, wait for the crawl-drop sensor's backfill, then drive Debian's
# Chromium (/usr/bin/chromium) over the pages and save each one. About 15-30 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q -p no:cacheprovider laion_assets_tests/ui/test_browser.py "$@"
