"""Which build of the streaming tokenizer and URL choice reads the pages (compiled, or the
pure-Python fallback where the extension is not built) never changes a shard's rows or
counts, and a hostile page in a shard is read in linear time."""

from __future__ import annotations

import io
import time

import pyarrow.parquet as pq
import pytest

from laion_assets.pipeline.extract.language import LanguageIdentifier
from laion_assets.pipeline.extract.stage import ExtractConfig, extract_shard
from laion_assets.pipeline.formats import html, html_tokens, http, warc
from laion_assets_tests.conftest import SHARED_WARCS
from laion_assets_tests.pipeline.formats.test_warc import gz, http_block, warc_record


def open_local(path: str):
    return open(path, "rb")  # noqa: SIM115 - extract_shard closes it


def run(files: list[str], config: ExtractConfig | None = None) -> tuple:
    sink = io.BytesIO()
    result = extract_shard(files, sink, open_file=open_local, crawl="CC-TEST", shard="00000",
                           config=config or ExtractConfig())
    rows = pq.read_table(io.BytesIO(sink.getvalue())).to_pylist()
    return rows, dict(result.stats.counts), dict(result.stats.dropped), dict(
        result.stats.languages)


@pytest.fixture(scope="module")
def shard_files(sample_drop_template) -> list[str]:
    warcs = [p for p in sorted(SHARED_WARCS.glob("*.warc.gz")) if ".wat." not in p.name
             and ".wet." not in p.name]
    return [str(p) for p in warcs + sorted(sample_drop_template.rglob("*.warc.gz"))]


def test_compiled_and_python_scanners_give_the_same_shard(shard_files, monkeypatch):
    assert html_tokens._compiled is not None, "the _html_scan extension is not built"
    compiled = run(shard_files)
    assert len(compiled[0]) > 300 and compiled[1]["candidates"] > 2500
    monkeypatch.setattr(html_tokens, "_compiled", None)
    assert run(shard_files) == compiled
    monkeypatch.setattr(html, "_first_url", None)  # no extension at all: URL choice too,
    monkeypatch.setattr(warc, "_warc_head", None)  # WARC and HTTP heads
    monkeypatch.setattr(http, "_http_head", None)
    assert run(shard_files) == compiled


def test_language_id_per_batch_labels_every_row_as_per_pair_id_would(shard_files):
    """Language id runs on a batch's alt texts at once: batch edges change nothing."""
    rows, _, _, languages = run(shard_files)
    assert run(shard_files, ExtractConfig(rows_per_batch=7))[0] == rows
    identify = LanguageIdentifier().identify
    assert [(r["language"], r["language_score"]) for r in rows] == [
        (language, pytest.approx(score, rel=1e-6))
        for language, score in map(identify, (r["text"] for r in rows))
    ]
    assert sum(languages.values()) >= len(rows) and {"en", "de"} <= set(languages)


def test_a_hostile_page_in_a_shard_is_read_in_linear_time(tmp_path):
    """200,000 nested elements around the images: lexbor would take minutes."""
    body = ("<html><body>" + "<div>" * 200_000 + '<img src="/a.jpg" alt="deep inside it">'
            + "</div>" * 200_000 + '<img src="/b.jpg" alt="after the nest">').encode()
    path = tmp_path / "hostile.warc.gz"
    path.write_bytes(b"".join(gz(warc_record(http_block(body), uri="http://example.com/"))))
    start = time.process_time()
    rows, counts, _, _ = run([str(path)])
    assert time.process_time() - start <= 3.0  # reading, parsing, parquet; lexbor: minutes
    assert [(r["url"], r["text"]) for r in rows] == [
        ("http://example.com/a.jpg", "deep inside it"),
        ("http://example.com/b.jpg", "after the nest"),
    ]
    assert counts["candidates"] == 2
