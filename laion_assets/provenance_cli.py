"""`laion-assets provenance`: where a row came from, what the filters said, which releases hold it.

Wired into `laion_assets.cli` by `add_provenance_command(subparsers)`; the work is done by
`laion_assets.pipeline.release.provenance.trace`.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from laion_assets.pipeline.core.manifests import (
    CLIP_SCORED_PAIRS,
    DOWNLOADED_IMAGES,
    EXTRACTED_PAIRS,
    SAFETY_FILTERED_PAIRS,
)

# a release's provenance columns naming the stage runs that made a row, and their stages
RUN_COLUMNS = (("extracted_run_id", EXTRACTED_PAIRS), ("downloaded_run_id", DOWNLOADED_IMAGES),
               ("scored_run_id", CLIP_SCORED_PAIRS), ("safety_run_id", SAFETY_FILTERED_PAIRS))


def add_provenance_command(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "provenance", help="trace a URL, hash, image sha256 or domain through every stage",
        description="Trace pairs through every stage: the release versions that hold them "
        "(or removed them, and why), the safety decisions and scores, the fetch result, the "
        "WARC record they came from, and the run of each stage.")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--url", help="an image URL (normalised as extraction does)")
    what.add_argument("--hash", help="a pair's hash (LAION's `hash`, our pair_id)")
    what.add_argument("--sha256", help="the sha256 of an image's bytes (hex)")
    what.add_argument("--domain", help="a host: every pair whose image URL is on it")
    p.add_argument("--show-html", action="store_true",
                   help="read the page back from its WARC record and show the <img> markup")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.add_argument("--store", help="dataset store root (default: LAION_ASSETS_STORE)")
    p.add_argument("--releases-only", action="store_true",
                   help="only look in the release indexes; do not scan the shards' pairs")
    p.add_argument("--shard", action="append", default=None,
                   help="scan only this shard's pairs (repeat); default: every shard")
    p.add_argument("--limit", type=int, default=100,
                   help="show at most this many pairs (0: all)")
    p.set_defaults(handler=run_provenance)
    return p


def run_provenance(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.provenance import trace
    from laion_assets.settings import from_environment, storage_options

    out = out or sys.stdout
    settings = from_environment()
    options = storage_options(settings.s3_endpoint)
    store = DatasetStore(args.store or settings.store, options)
    limit = None if args.limit <= 0 else args.limit
    records = trace(store, url=args.url, hash=args.hash, sha256=args.sha256, domain=args.domain,
                    show_html=args.show_html, scan_shards=not args.releases_only,
                    shards=args.shard, limit=None if limit is None else limit + 1,
                    storage_options=options)
    more = limit is not None and len(records) > limit
    records = records[:limit] if more else records
    if args.json:
        json.dump(records, out, indent=1, ensure_ascii=False)
        out.write("\n")
        return 0
    for number, record in enumerate(records):
        if number:
            out.write("\n")
        out.write(format_record(record))
    if more:
        out.write(f"\n… more pairs match: showing the first {limit} (use --limit 0 for all)\n")
    return 0


def _model_name(identity: dict) -> str:
    return f"{identity.get('model')} ({identity.get('pretrained')})"


def format_record(r: dict) -> str:
    """A readable block for one traced pair."""
    lines = [f"pair {r['hash']}", f"  url       {r['url']}"]
    if r.get("text") is not None:
        lines.append(f"  text      {r['text']!r} ({r.get('language') or '?'})")
    lines.append(f"  shard     {r.get('shard') or '?'}")
    lines.append("  releases")
    if not r["releases"]:
        lines.append("    (no committed release)")
    for entry in r["releases"]:
        status = _release_status(entry)
        if entry.get("from_shard") not in (None, r.get("shard")):
            status += f", released from {entry['from_shard']}"
        lines.append(f"    {entry['name']} v{entry['version']:04d} {status}")
        captions = entry.get("caption_models")
        if captions:
            lines.append(f"      captions by {_model_name(captions['captioner'])}, ranked by "
                         f"{_model_name(captions['ranker'])} "
                         f"({captions['generation'].get('generation')})")
    lines.append(f"  decision  {r['decision']}")
    for hit in r["exclusions"]:
        value = f" [{hit['value']}]" if hit.get("value") not in (None, "") else ""
        lines.append(f"    ✗ {hit['rule']}: {hit.get('detail') or ''}{value}")
    scores = r.get("scores") or {}
    if scores:
        lines.append("  scores    " + "  ".join(f"{k} {_num(scores.get(k))}" for k in (
            "similarity", "punsafe", "pwatermark")))
    clip = r.get("clip")
    if clip is not None and not scores:
        lines.append(f"  clip      {'scored' if clip['scored'] else 'not scored'}")
    if r.get("model"):
        model = r["model"]
        lines.append("  model     " + (", ".join(f"{k} {v}" for k, v in model.items())
                                       if isinstance(model, dict) else str(model)))
    lines.append(f"  fetch     {_fetch(r.get('fetch'))}")
    warc = r["warc"]
    lines.append(f"  WARC      {warc.get('warc_file')} @ {warc.get('warc_record_offset')}")
    lines.append(f"            record {warc.get('warc_record_id')}, captured "
                 f"{warc.get('capture_time')}")
    lines.append(f"            page {warc.get('page_url')}")
    lines.extend(_made_by(r["releases"]))
    lines.append("  runs now  (each stage's committed output today; a re-run replaces it)")
    for stage, run in r["runs"].items():
        if run is None:
            lines.append(f"    {stage:22s} (nothing committed)")
        else:
            lines.append(f"    {stage:22s} run {run['run_id']}  data version "
                         f"{run['data_version']}")
    for missing in r.get("missing", []):
        lines.append(f"  missing   {missing}")
    if "html" in r:
        lines.extend(_html(r["html"]))
    return "\n".join(lines) + "\n"


def _made_by(releases: list[dict]) -> list[str]:
    """The stage runs recorded in the provenance table of each version holding the row;
    versions with the same runs share one block."""
    groups: dict[tuple, list[dict]] = {}
    for entry in releases:
        if entry.get("status") == "holds":
            runs = entry.get("runs") or {}
            key = (entry["name"], *(runs.get(column) for column, _ in RUN_COLUMNS))
            groups.setdefault(key, []).append(entry)
    if not groups:
        return []
    lines = ["  runs that made the row (the provenance table of each release holding it)"]
    for (name, *runs), entries in groups.items():
        lines.append(f"    {name} " + ", ".join(f"v{e['version']:04d}" for e in entries))
        for (_, stage), run in zip(RUN_COLUMNS, runs, strict=True):
            lines.append(f"      {stage:22s} run {run or '?'}")
        for entry in entries:
            if entry.get("run_id"):
                label = f"release v{entry['version']:04d}"
                lines.append(f"      {label:22s} run {entry['run_id']}")
    return lines


def _release_status(entry: dict) -> str:
    status = entry["status"]
    if status == "holds":
        return f"✓ holds it (part {entry['part']}, row {entry['row']})"
    if status == "removed":
        rule, reason = entry.get("rule") or "", entry.get("reason") or ""
        why = reason if not rule or reason.startswith(rule) else f"{rule} {reason}"
        return f"✗ removed: {why.strip()}"
    if status == "unknown":
        return f"? {entry.get('error')}"
    if entry.get("removed_in"):
        return f"✗ not in it (removed in v{entry['removed_in']:04d})"
    return "✗ not in it"


def _fetch(fetch: dict | None) -> str:
    if fetch is None:
        return "no fetch result for this URL"
    if fetch.get("status") != "ok":
        detail = f" ({fetch['detail']})" if fetch.get("detail") else ""
        http = f", HTTP {fetch['http_status']}" if fetch.get("http_status") else ""
        return f"failed: {fetch.get('reason')}{detail} via {fetch.get('source')}{http}"
    size = f"{fetch.get('width')}x{fetch.get('height')}"
    return (f"ok via {fetch.get('source')}, HTTP {fetch.get('http_status')}, {size}, "
            f"{fetch.get('bytes')} bytes, sha256 {fetch.get('sha256')}, "
            f"fetched {fetch.get('fetched_at')}")


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:.4f}"


def _html(html: dict) -> list[str]:
    if "error" in html:
        return [f"  html      {html['error']}"]
    if not html.get("found"):
        return [f"  html      {html.get('detail')}"]
    lines = [f"  html      line {html['line']} of the page ({html['match']}; HTTP "
             f"{html['http_status']}, {html['charset']})"]
    for number, text in html["lines"]:
        mark = ">" if number == html["line"] else " "
        lines.append(f"   {mark}{number:6d} | {text}")
    return lines
