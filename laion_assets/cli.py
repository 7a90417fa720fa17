"""`laion-assets`: sample drop, materialization, the demo, releases, takedowns, provenance."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from laion_assets.cli_progress import CommandProgress, ShardRunProgress
from laion_assets.explorer.cli import add_explore_command
from laion_assets.provenance_cli import add_provenance_command


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"laion-assets {args.command}: error: {exc}", file=sys.stderr)
        return 2


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except where there is none (None, a flag left off)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, "", [], argparse.SUPPRESS) or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("laion-assets")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="laion-assets", description=__doc__,
                                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_SubParser)

    p = sub.add_parser("sample-drop", help="write the deterministic sample crawl drop")
    p.add_argument("dir", type=Path, help="drop folder; its name is the crawl name")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sample pages")
    p.add_argument("--files", type=int, default=4, help="WARC files in the drop")
    p.set_defaults(handler=_sample_drop)

    p = sub.add_parser("materialize", help="register a drop's shards and materialize them")
    p.add_argument("--drop", required=True, help="drop folder or s3:// prefix")
    p.set_defaults(handler=_materialize)

    p = sub.add_parser("register", help="register a drop's shards without materializing "
                       "them (the UI then shows them as missing)")
    p.add_argument("--drop", required=True, help="drop folder or s3:// prefix")
    p.set_defaults(handler=_register)

    p = sub.add_parser("demo", help="write the sample drop and materialize every asset")
    p.add_argument("--seed", type=int, default=0, help="random seed of the sample drop")
    p.set_defaults(handler=_demo)

    p = sub.add_parser("release", help="publish the next version of a release")
    p.add_argument("--name", default="laion-assets", help="release name")
    p.add_argument("--crawl", action="append", default=[], help="crawl to include (repeat)")
    p.add_argument("--shard", action="append", default=[], help="shard to include (repeat)")
    p.add_argument("--dedup-by-sha256", action="store_true",
                   help="keep one row per image sha256")
    p.add_argument("--notes", default="", help="a line for the changelog")
    p.add_argument("--export-images", type=Path, metavar="DIR",
                   help="publish nothing: write a committed version's stored images to DIR "
                   "(new or empty) in img2dataset's webdataset layout")
    p.add_argument("--version", type=int, help="with --export-images: the version to export "
                   "(default: the latest)")
    p.add_argument("--samples-per-tar", type=int, default=10_000,
                   help="samples per exported tar file")
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
    p.add_argument("--crawl", default="local", help="crawl name recorded on the pairs")
    p.add_argument("--min-alt-chars", type=int, default=5,
                   help="shortest alt text kept, in characters")
    p.set_defaults(handler=_extract)
    add_provenance_command(sub)
    add_explore_command(sub)
    return parser


class _SubParser(argparse.ArgumentParser):
    """Subcommand parsers (and theirs) show defaults too."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _sample_drop(args: argparse.Namespace) -> int:
    from laion_assets.sample.drop import write_sample_drop

    drop = write_sample_drop(args.dir, seed=args.seed, n_files=args.files)
    print(f"{drop.drop_dir}: crawl {drop.crawl}, {len(drop.warc_files)} WARC files, "
          f"{drop.pages} pages, {drop.image_records} image records")
    return 0


def _register(args: argparse.Namespace) -> int:
    _ensure_dagster_home()
    from dagster import DagsterInstance

    from laion_assets.definitions import defs
    from laion_assets.defs.headless import register_drop

    drop = args.drop if "://" in args.drop else str(Path(args.drop).absolute())
    with DagsterInstance.get() as instance:
        crawl, keys, new = register_drop(drop, defs, instance)
    print(f"{crawl}: {len(keys)} shards registered ({len(new)} new) in "
          f"{os.environ['DAGSTER_HOME']}; materialize them with `laion-assets materialize "
          f"--drop {args.drop}` or from the UI (Assets > shards > Materialize missing)")
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
    from laion_assets.defs.summary import next_steps, release_line

    store = defs.resources["dataset_store"].store()
    line = release_line(store, "laion-assets", [r.shard for r in runs])
    if line is None:
        code = _release(argparse.Namespace(name="laion-assets", crawl=[], shard=[],
                                           dedup_by_sha256=False, notes="first version (demo)",
                                           export_images=None, version=None))
        if code:
            return code
    else:
        print(f"\n{line}")
    print("\nnext:")
    for step in next_steps(store, "laion-assets"):
        print(f"  {step}")
    return 0


def _release(args: argparse.Namespace) -> int:
    if args.export_images is not None:
        return _export_images(args)
    if args.version is not None:
        raise ValueError("--version names the version to export: use it with --export-images")
    _ensure_dagster_home()
    from dagster import DagsterInstance

    from laion_assets.definitions import defs
    from laion_assets.defs.headless import cut_release
    from laion_assets.pipeline.release.publish import latest_release

    config = {"name": args.name, "crawls": args.crawl, "shards": args.shard,
              "dedup_by_sha256": args.dedup_by_sha256, "notes": args.notes}
    with (DagsterInstance.get() as instance, _dagster_log(),
          CommandProgress(f"publishing {args.name}")):
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


def _export_images(args: argparse.Namespace) -> int:
    from laion_assets.pipeline.release.export import export_images
    from laion_assets.pipeline.release.publish import latest_release, read_release

    mixed = [o for o, on in (("--crawl", args.crawl), ("--shard", args.shard), ("--notes",
             args.notes), ("--dedup-by-sha256", args.dedup_by_sha256)) if on]
    if mixed:
        raise ValueError(f"--export-images exports a committed version and publishes nothing: "
                         f"leave out {', '.join(mixed)} (publish first, then export)")
    store = _store()
    release = (latest_release(store, args.name) if args.version is None
               else read_release(store, args.name, args.version))
    with CommandProgress(f"exporting {args.name} v{release.version}", total=release.rows,
                         unit="rows") as progress:
        result = export_images(store, release, args.export_images,
                               samples_per_tar=args.samples_per_tar, progress=progress.advance)
    print(f"{args.export_images}: {result.exported} of {release.rows} rows of {args.name} "
          f"v{release.version} in {len(result.tars)} tar files (img2dataset's webdataset "
          "layout, with _stats.json per tar)")
    for status, n in sorted(result.status.items()):
        if status != "success":
            print(f"  not exported, {status}: {n}")
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
    print(_released_matches(store, entry.kind, entry.value))
    return 0


def _released_matches(store, kind: str, value: str) -> str:
    """How many released rows the takedown matches, and in which versions."""
    from laion_assets.pipeline.release.provenance import _search_releases

    then = ("takedown_sensor cuts the next version without them "
            "(with the daemon running: `make ui`; or run `laion-assets release`)")
    if kind not in ("url", "domain", "sha256"):
        return (f"released rows matching a {kind} are counted when the next version is cut; "
                "takedown_sensor cuts it (with the daemon running: `make ui`)")
    versions = _search_releases(store, kind, value)
    if not versions:
        return f"no release in {store.uri('releases')} yet: nothing released to remove"
    hits = [(f"{v.name} v{v.version}", len(v.rows)) for v in versions if v.rows]
    if not hits:
        return f"0 released rows match in {len(versions)} version(s); nothing to remove"
    listed = ", ".join(f"{name} ({n})" for name, n in hits)
    return f"{sum(n for _, n in hits)} released rows match: {listed}; {then}"


def _takedown_list(args: argparse.Namespace) -> int:
    from laion_assets.pipeline.safety.takedowns import LEDGER, read_ledger

    store = _store()
    entries = read_ledger(store)
    print(f"takedown ledger {store.uri(LEDGER)}: {len(entries)} entries")
    for e in entries:
        print(f"{e.added_at}  {e.id}  {e.kind:<6} {e.value}  {e.reason}"
              f"  (requested by {e.requested_by or 'unknown'})")
    return 0


def _run_drop(drop: str) -> list:
    _ensure_dagster_home()
    from dagster import DagsterInstance

    from laion_assets.definitions import defs
    from laion_assets.defs.headless import materialize_drop
    from laion_assets.defs.summary import print_summary

    drop = drop if "://" in drop else str(Path(drop).absolute())
    with DagsterInstance.get() as instance, _dagster_log() as log_path:
        print(f"Dagster's run logs: {log_path}")
        with ShardRunProgress() as progress:
            runs = materialize_drop(drop, defs, instance, log=progress)
    print_summary(defs, [r.shard for r in runs])
    return runs


@contextlib.contextmanager
def _dagster_log():
    """Dagster's console log (stderr) goes to a file under $LAION_ASSETS_VAR/logs while the
    runs execute; open_clip's "No pretrained weights" warning is dropped (the summary says it
    once). Yields the file's path; the lines this command prints stay on stdout."""
    from datetime import UTC, datetime

    from laion_assets.settings import from_environment

    folder = from_environment().var.absolute() / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dagster-{datetime.now(UTC):%Y%m%dT%H%M%S}.log"
    root, handler = logging.getLogger(), logging.FileHandler(path, encoding="utf-8")
    root.addFilter(_no_pretrained_warning)
    root.addHandler(handler)  # other libraries' warnings go to the file too
    try:
        with path.open("a", encoding="utf-8") as sink, contextlib.redirect_stderr(sink):
            yield path
    finally:
        root.removeHandler(handler)
        root.removeFilter(_no_pretrained_warning)
        handler.close()


def _no_pretrained_warning(record: logging.LogRecord) -> bool:
    return not record.getMessage().startswith("No pretrained weights")


def _ensure_dagster_home() -> None:
    """Default DAGSTER_HOME to ./var/dagster, using the project's dagster.yaml."""
    if os.environ.get("DAGSTER_HOME"):
        return
    from laion_assets.settings import from_environment, project_root

    home = from_environment().var.absolute() / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = (project_root() or Path()).absolute() / "dagster.yaml"
    if config.exists() and not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").symlink_to(config)
    os.environ["DAGSTER_HOME"] = str(home)


def _extract(args: argparse.Namespace) -> int:
    import fsspec

    from laion_assets.pipeline.core.files import atomic_local_file
    from laion_assets.pipeline.extract.stage import ExtractConfig, extract_shard

    config = ExtractConfig(min_alt_chars=args.min_alt_chars)
    with (CommandProgress("extracting", total=len(args.warcs), unit="WARC files") as progress,
          atomic_local_file(args.out) as sink):
        result = extract_shard(
            args.warcs, sink, open_file=lambda uri: fsspec.open(uri, "rb").open(),
            crawl=args.crawl, shard=f"{args.crawl}/00000", config=config,
            log=lambda _: progress.advance(),
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
