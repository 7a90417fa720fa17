"""A small grid of a shard's images for its materialization (markdown with inline data: URIs,
which Dagster's markdown renders): passed pairs, and excluded ones per rule, NSFW blurred,
hash-listed never shown."""

from __future__ import annotations

import base64
import html
import io

from PIL import Image, ImageFilter

from laion_assets.explorer.pages import BLURRED_RULES, NEVER_SHOWN_RULES
from laion_assets.pipeline.core.manifests import (
    DownloadedImagesManifest,
    ExtractedPairsManifest,
    SafetyFilteredPairsManifest,
    read_current,
)
from laion_assets.pipeline.core.store import DatasetStore
from laion_assets.pipeline.formats.webdataset import image_members, url_key

THUMB = 64  # pixels, the longer side
PASSED = 6  # thumbnails of passed pairs
PER_RULE = 3  # thumbnails per exclusion rule


def shard_grid_md(store: DatasetStore, manifest: SafetyFilteredPairsManifest) -> str:
    """Markdown: a row of passed thumbnails, then one row per exclusion rule."""
    extracted = read_current(store, ExtractedPairsManifest, manifest.shard)
    if extracted is None:
        return "(no extracted pairs for this shard)"
    passed = store.read_parquet(manifest.pairs_file, columns=["url"]).column("url").to_pylist()
    urls = dict(zip(*store.read_parquet(extracted.file, columns=["pair_id", "url"])
                    .to_pydict().values(), strict=True))
    excluded = {rule: [urls.get(i, "") for i in ids]
                for rule, ids in _excluded_by_rule(store, manifest).items()}
    return grid_md(store, manifest.shard, passed, excluded)


def grid_md(store: DatasetStore, shard: str, passed: list[str],
            excluded: dict[str, list[str]]) -> str:
    """Thumbnails of the shard's stored images of `passed` URLs, then per rule of `excluded`
    (rule -> URLs): blurred for NSFW rules, only a count for hash-list rules."""
    images = read_current(store, DownloadedImagesManifest, shard)
    stored = _tar_members(store, images.tars) if images else {}
    lines = [_row(store, stored, "passed", passed, blur=False, limit=PASSED)]
    for rule, urls in excluded.items():
        if rule in NEVER_SHOWN_RULES:
            lines.append(f"**{rule}** ({len(urls)}): matched by a hash list, never shown")
            continue
        lines.append(_row(store, stored, rule, urls, blur=rule in BLURRED_RULES,
                          limit=PER_RULE))
    return "\n\n".join(lines)


def _excluded_by_rule(store: DatasetStore, manifest: SafetyFilteredPairsManifest
                      ) -> dict[str, list[int]]:
    table = store.read_parquet(manifest.exclusions_file, columns=["pair_id", "rule"])
    out: dict[str, list[int]] = {}
    for pair_id, rule in zip(*table.to_pydict().values(), strict=True):
        out.setdefault(rule, []).append(pair_id)
    return out


def _row(store: DatasetStore, stored: dict, label: str, urls: list[str], *, blur: bool,
         limit: int) -> str:
    """`**label** (n): ` and up to `limit` inline thumbnails of the stored ones among `urls`."""
    thumbs = []
    for url in urls:
        data = _read_member(store, stored, url_key(url)) if url else None
        if data is not None:
            thumbs.append(f"![{html.escape(label)}]({_thumbnail_uri(data, blur)})")
        if len(thumbs) == limit:
            break
    shown = " ".join(thumbs) or "(no stored image)"
    return f"**{label}**{' (blurred)' if blur else ''}: {shown}"


def _tar_members(store: DatasetStore, tars: list[str]) -> dict[str, tuple[str, int, int]]:
    """Image members of the shard's tars by key: (tar, data offset, size)."""
    members = {}
    for tar in tars:
        with store.open(tar) as handle:
            members.update({key: (tar, offset, size)
                            for key, (offset, size) in image_members(handle).items()})
    return members


def _read_member(store: DatasetStore, stored: dict, key: str) -> bytes | None:
    if key not in stored:
        return None
    tar, offset, size = stored[key]
    with store.open(tar) as handle:
        handle.seek(offset)
        return handle.read(size)


def _thumbnail_uri(data: bytes, blur: bool) -> str:
    """A small JPEG of the image as a data: URI, blurred beyond recognition if `blur`."""
    with Image.open(io.BytesIO(data)) as image:
        thumb = image.convert("RGB")
        thumb.thumbnail((THUMB, THUMB))
    if blur:
        thumb = thumb.filter(ImageFilter.GaussianBlur(8))
    out = io.BytesIO()
    thumb.save(out, format="JPEG", quality=70)
    return "data:image/jpeg;base64," + base64.b64encode(out.getvalue()).decode()
