"""Deterministic generator for a small, Common-Crawl-shaped sample crawl drop.

The drop is a test fixture for the WARC → image/alt-text pipeline: a handful of gzipped
WARC/1.0 files full of deliberately awkward HTML, the images those pages reference, and
some records that extraction must ignore. Everything is derived from ``seed``: the same
seed always yields byte-identical files (fixed ``WARC-Date``s, record ids drawn from a
seeded :class:`random.Random`, gzip headers with ``mtime=0``).

Layout (the crawl name is the drop folder's name, e.g. ``var/drops/CC-MAIN-SAMPLE``)::

    <drop_dir>/warc.paths.gz
        gzip text, one path per line, relative to <drop_dir>; listing order = file order
    <drop_dir>/segments/1700000000000.00/warc/<CRAWL>-20261121000000-0000N.warc.gz
        N = 0 .. n_files-1, written with warcio's WARCWriter (one gzip member per record)

Record order inside each WARC file:

* one ``warcinfo`` record;
* per page: a ``request`` record, then a ``response`` record (``HTTP/1.1 200`` with a
  ``Content-Type`` header), then a ``response`` record for every image the page
  references that is not yet captured in this file (what an archiving crawler stores
  alongside a page). A few referenced images are deliberately *not* captured, two image
  URLs answer ``404``, and the shop's "secure checkout" badge is stored as a ``revisit``
  record (identical-payload-digest) in every file after the one that first captured it;
* non-page captures that extraction must ignore (``text/css``,
  ``application/javascript``, ``application/pdf`` and a ``301`` redirect), each as a
  ``request`` + ``response`` pair.

``SampleDrop.pages`` counts the ``200 text/html`` page responses
(``n_files * pages_per_file``); ``SampleDrop.image_records`` counts the ``200`` image
responses (bytes made with Pillow; the 404s and revisits are not counted).

Page slots are dealt round-robin over the files (slot k goes to file ``k % n_files``, then
each file's pages are shuffled). The first ``FEATURE_PAGE_COUNT`` (14) slots hold the
hand-written *feature pages* listed in ``FEATURE_PAGES`` (relative/protocol-relative URLs,
``<base href>``, ``srcset``/``<picture>``, lazy-loading attributes, entity-laden and
degenerate alt texts, tracking pixels, ``data:``/``javascript:``/``mailto:`` sources,
``<noscript>`` and commented-out images, uppercase/unquoted markup, pages in windows-1251 /
iso-8859-1 / shift_jis / undeclared windows-1252, alt texts in eight languages); the other
slots are seeded filler pages on the same fake sites. With the defaults (4 files x 12
pages) every feature is present and each file holds 3-4 feature pages; a drop with fewer
than 14 slots only gets the first feature pages. Only reserved example domains are used
(``*.example``, ``example.com/.net/.org``; fake IPs from 192.0.2.0/24).

The parts: ``catalogue`` (image specs, pages, sites, non-page captures), ``feature_pages``
(the hand-written cases), ``filler`` (seeded filler pages and the plan of pages per file),
``images`` (the image bytes) and ``warc_writer`` (the records); this module writes a drop.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from laion_assets.pipeline.formats.http import parse_response
from laion_assets.pipeline.formats.warc import WarcRecord, iter_warc
from laion_assets.sample.catalogue import EXTRAS, ImageSpec, Page
from laion_assets.sample.feature_pages import FEATURE_PAGE_COUNT, FEATURE_PAGES
from laion_assets.sample.filler import plan_pages
from laion_assets.sample.images import render_image
from laion_assets.sample.warc_writer import DropState, write_warc

__all__ = ["FEATURE_PAGES", "FEATURE_PAGE_COUNT", "FILE_TIMESTAMP", "ImageSpec", "LISTING_NAME",
           "Page", "SEGMENT", "SampleDrop", "plan_pages", "render_image", "write_sample_drop"]

SEGMENT = "1700000000000.00"
FILE_TIMESTAMP = "20261121000000"
LISTING_NAME = "warc.paths.gz"


@dataclass(frozen=True)
class SampleDrop:
    """Summary of a written sample drop."""

    drop_dir: Path
    crawl: str
    warc_files: list[Path]
    pages: int
    image_records: int



def write_sample_drop(drop_dir: str | Path, *, seed: int = 0, n_files: int = 4,
                      pages_per_file: int = 12, extra_pages: Sequence[Page] = ()) -> SampleDrop:
    """Write a deterministic Common-Crawl-shaped sample drop into ``drop_dir``.

    The crawl name is ``drop_dir``'s folder name. Existing files of the same names are
    overwritten (others are left alone; ``warc.paths.gz`` is the authoritative listing).
    ``pages`` counts the ``200 text/html`` page responses and ``image_records`` the ``200``
    image responses (404s and revisit records excluded). Same seed, same bytes.
    `extra_pages` (e.g. pages that plant test cases) are appended to the first file.
    """
    if n_files < 1 or pages_per_file < 1:
        raise ValueError("n_files and pages_per_file must be >= 1")
    drop = Path(drop_dir)
    crawl = drop.absolute().name
    warc_dir = drop / "segments" / SEGMENT / "warc"
    warc_dir.mkdir(parents=True, exist_ok=True)
    state = DropState(seed)
    plan = plan_pages(seed, n_files, pages_per_file)
    plan[0].extend(extra_pages)
    warc_files: list[Path] = []
    for index, pages in enumerate(plan):
        path = warc_dir / f"{crawl}-{FILE_TIMESTAMP}-{index:05d}.warc.gz"
        write_warc(path, index, crawl, pages, list(EXTRAS[index::n_files]), state)
        warc_files.append(path)
    listing = "".join(f"{p.relative_to(drop).as_posix()}\n" for p in warc_files)
    (drop / LISTING_NAME).write_bytes(gzip.compress(listing.encode("ascii"), mtime=0))
    return SampleDrop(drop, crawl, warc_files, n_files * pages_per_file + len(extra_pages),
                      state.image_records)


def captured_body(drop: Path, url: str) -> bytes:
    """The body of the `200` response record for `url` in the drop's first WARC file."""
    listing = gzip.decompress((drop / "warc.paths.gz").read_bytes()).decode().split()
    with open(drop / listing[0], "rb") as handle:
        for record in iter_warc(handle):
            if (isinstance(record, WarcRecord) and record.rec_type == "response"
                    and record.headers.get("warc-target-uri") == url):
                return parse_response(record.block, max_body_bytes=1 << 24).body
    raise LookupError(f"{drop / listing[0]}: no response record for {url}")
