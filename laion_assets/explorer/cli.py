"""`laion-assets explore`: serve the audit explorer over a release version."""

from __future__ import annotations

import argparse
import os

TOKEN_ENV = "LAION_ASSETS_OPERATOR_TOKEN"
DEFAULT_PORT = 8765


def add_explore_command(sub) -> None:
    p = sub.add_parser("explore", help="serve the audit explorer over a release version "
                       "(search, thumbnails, provenance, exclusions by rule)")
    p.add_argument("--release", default="laion-assets",
                   help="NAME or NAME@vN (default: the latest version)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--store", default=None, help="dataset store root (default: the settings')")
    p.add_argument("--operator-token", default=None,
                   help=f"enables removal requests from the page (or {TOKEN_ENV}); without "
                   "it the explorer is read-only")
    p.add_argument("--dagster-url", default=None,
                   help="the Dagster UI (e.g. http://127.0.0.1:3000): the detail panel links "
                   "run ids to it")
    p.add_argument("--build-index", action="store_true",
                   help="build the version's kNN index first when none is committed")
    p.set_defaults(handler=_explore)


def _explore(args: argparse.Namespace) -> int:
    from laion_assets.explorer.app import Explorer, parse_release, serve
    from laion_assets.pipeline.core.store import DatasetStore
    from laion_assets.pipeline.release.knn import build_index, read_index_manifest
    from laion_assets.pipeline.release.publish import latest_release
    from laion_assets.settings import from_environment, storage_options

    settings = from_environment()
    store = DatasetStore(args.store or settings.store, storage_options(settings.s3_endpoint))
    name, version = parse_release(args.release)
    version = version or latest_release(store, name).version
    if args.build_index and read_index_manifest(store, name, version) is None:
        build_index(store, name, version)
    token = args.operator_token or os.environ.get(TOKEN_ENV) or None
    explorer = Explorer(store, name, version, operator_token=token,
                        dagster_url=(args.dagster_url or "").rstrip("/") or None)
    print(f"explorer: {name} v{version} at http://{args.host}:{args.port}/ "
          f"({'operator token set' if token else 'read-only'})", flush=True)
    serve(explorer, args.host, args.port)
    return 0
