"""`laion-assets`: sample drop, materialization, the demo, releases, takedowns, provenance."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from laion_assets.provenance_cli import add_provenance_command


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"laion-assets {args.command}: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="laion-assets", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample-drop", help="write the deterministic sample crawl drop")
    p.add_argument("dir", type=Path, help="drop folder; its name is the crawl name")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--files", type=int, default=4, help="WARC files in the drop")
    p.set_defaults(handler=_sample_drop)

    p = sub.add_parser("materialize", help="register a drop's shards and materialize them")
    p.add_argument("--drop", required=True, help="drop folder or s3:// prefix")
    p.set_defaults(handler=_materialize)

    p = sub.add_parser("demo", help="write the sample drop and materialize every asset")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=_demo)

    p = sub.add_parser("release", help="publish the next version of a release")
    p.add_argument("--name", default="laion-assets")
    p.add_argument("--crawl", action="append", default=[], help="crawl to include (repeat)")
    p.add_argument("--shard", action="append", default=[], help="shard to include (repeat)")
    p.add_argument("--dedup-by-sha256", action="store_true")
    p.add_argument("--notes", default="", help="a line for the changelog")
    p.set_defaults(handler=_release)

    p = sub.add_parser("takedown", help="the takedown ledger: add entries, list them")
    actions = p.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="append a removal request to the ledger")
    what = add.add_mutually_exclusive_group(required=True)
    for kind in ("url", "domain", "sha256", "md5", "sha1", "pdq"):
        what.add_argument(f"--{kind}", help=f"the {kind} to remove")
    add.add_argument("--reason", required=True, help="why (recorded in the changelog)")
    add.add_argument("--requested-by", default="", help="who asked (optional)")
    add.set_defaults(handler=_takedown_add)
    listing = actions.add_parser("list", help="print the ledger, oldest first")
    listing.set_defaults(handler=_takedown_list)

    p = sub.add_parser("extract", help="extract pairs from WARC files (no Dagster)")
    p.add_argument("warcs", nargs="+", help="WARC files (paths or fsspec URIs)")
    p.add_argument("--out", required=True, type=Path, help="output parquet file")
    p.add_argument("--crawl", default="local")
    p.add_argument("--min-alt-chars", type=int, default=5)
    p.set_defaults(handler=_extract)
    add_provenance_command(sub)
    return parser


def _sample_drop(args: argparse.Namespace) -> int:
    from laion_assets.sample.drop import write_sample_drop

    drop = write_sample_drop(args.dir, seed=args.seed, n_files=args.files)
    print(f"{drop.drop_dir}: crawl {drop.crawl}, {len(drop.warc_files)} WARC files, "
          f"{drop.pages} pages, {drop.image_records} image records")
    return 0


def _materialize(args: argparse.Namespace) -> int:
    runs = _run_drop(args.drop)
    return 0 if all(r.success for r in runs) else 1


def _demo(args: argparse.Namespace) -> int:
    from laion_assets.sample.drop import write_sample_drop
    from laion_assets.settings import from_environment

    drop_dir = Path(from_environment().drops) / "CC-MAIN-SAMPLE"
    if not (drop_dir / "warc.paths.gz").exists():
        write_sample_drop(drop_dir, seed=args.seed)
        print(f"wrote the sample crawl drop to {drop_dir}")
    runs = _run_drop(str(drop_dir))
    if not all(r.success for r in runs):
        return 1
    from laion_assets.definitions import defs
    from laion_assets.pipeline.release.publish import list_versions

    if list_versions(defs.resources["dataset_store"].store(), "laion-assets"):
        return 0  # a release exists: cut the next one with `laion-assets release`
    return _release(argparse.Namespace(name="laion-assets", crawl=[], shard=[],
                                       dedup_by_sha256=False, notes="first version (demo)"))


def _release(args: argparse.Namespace) -> int:
    _ensure_dagster_home()
    from dagster import DagsterInstance

    from laion_assets.definitions import defs
    from laion_assets.defs.headless import cut_release
    from laion_assets.pipeline.release.publish import latest_release

    config = {"name": args.name, "crawls": args.crawl, "shards": args.shard,
              "dedup_by_sha256": args.dedup_by_sha256, "notes": args.notes}
    with DagsterInstance.get() as instance:
        ok, run_id = cut_release(defs, instance, config)
    if not ok:
        print(f"release {args.name}: FAILED (run {run_id[:8]})", file=sys.stderr)
        return 1
    store = defs.resources["dataset_store"].store()
    manifest = latest_release(store, args.name)
    print(f"\nrelease {args.name} v{manifest.version}: {manifest.rows} rows, "
          f"{len(manifest.source_shards)} shards (run {run_id[:8]})")
    for line in manifest.changelog:
        print(f"  {line}")
    print(f"  {store.uri(manifest.folder)}")
    return 0


def _store():
    """The configured dataset store, without loading the Dagster definitions (and torch)."""
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.settings import from_environment, storage_options

    settings = from_environment()
    return DatasetStore(settings.store, storage_options(settings.s3_endpoint))


def _takedown_add(args: argparse.Namespace) -> int:
    from laion_assets.pipeline.safety.takedowns import KINDS, append, new_takedown

    kind = next(k for k in KINDS if getattr(args, k))
    entry = new_takedown(kind, getattr(args, kind), args.reason, args.requested_by)
    store = _store()
    path = append(store, [entry])
    print(f"{entry.id}: {entry.kind} {entry.value} ({entry.reason}) -> {store.uri(path)}")
    return 0


def _takedown_list(args: argparse.Namespace) -> int:
    from laion_assets.pipeline.safety.takedowns import read_ledger

    for e in read_ledger(_store()):
        print(f"{e.added_at}  {e.id}  {e.kind:<6} {e.value}  {e.reason}")
    return 0


def _run_drop(drop: str) -> list:
    _ensure_dagster_home()
    from dagster import DagsterInstance

    from laion_assets.definitions import defs
    from laion_assets.defs.headless import materialize_drop
    from laion_assets.defs.summary import print_summary

    drop = drop if "://" in drop else str(Path(drop).absolute())
    with DagsterInstance.get() as instance:
        runs = materialize_drop(drop, defs, instance)
    print_summary(defs, [r.shard for r in runs])
    return runs


def _ensure_dagster_home() -> None:
    """Default DAGSTER_HOME to ./var/dagster, using the project's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return
    home = Path(os.environ.get("LAION_ASSETS_VAR", "var")).absolute() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = Path("dagster.yaml").absolute()
    if config.exists() and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").symlink_to(config)
    os.environ["DAGSTER_HOME"] = str(home)


def _extract(args: argparse.Namespace) -> int:
    import fsspec

    from laion_assets.pipeline.core.files import atomic_local_file
    from laion_assets.pipeline.extract.stage import ExtractConfig, extract_shard

    config = ExtractConfig(min_alt_chars=args.min_alt_chars)
    with atomic_local_file(args.out) as sink:
        result = extract_shard(
            args.warcs, sink, open_file=lambda uri: fsspec.open(uri, "rb").open(),
            crawl=args.crawl, shard=f"{args.crawl}/00000", config=config,
        )
    stats = result.stats
    print(f"{args.out}: {result.rows} pairs from {stats.counts['html_pages']} pages")
    for reason, count in stats.dropped.most_common():
        print(f"  dropped {reason}: {count}")
    for reason, count in stats.skipped_records.most_common():
        print(f"  skipped record {reason}: {count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
