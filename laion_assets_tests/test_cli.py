import argparse
import io
import os
import pty
import subprocess
import sys
import threading
from importlib.metadata import version
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from laion_assets.cli import _parser, main
from laion_assets.cli_progress import ShardRunProgress
from laion_assets.pipeline.extract.pairs import EXTRACTED_PAIRS_SCHEMA
from laion_assets.settings import project_root
from laion_assets_tests.conftest import SHARED_WARCS


def test_extract_writes_the_same_columns(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    assert main(["extract", str(SHARED_WARCS / "wikipedia-2012-homepage.warc.gz"),
                 "--out", str(out)]) == 0
    table = pq.read_table(out, use_threads=False, pre_buffer=False)
    assert table.schema.names == EXTRACTED_PAIRS_SCHEMA.names
    assert table.num_rows == 17
    printed = capsys.readouterr().out
    assert printed.startswith(f"{out}: 17 pairs from 1 pages")
    assert "\x1b" not in printed and "extracting" not in printed  # no bar: not a terminal


def _drain(master: int) -> bytes:
    """Everything written to a pseudo-terminal until its last writer closes it."""
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side is closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return b"".join(chunks)


def on_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run the CLI with its stdout on a pseudo-terminal; what the terminal received."""
    master, slave = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "laion_assets.cli", *args], stdout=slave,
                          stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                          env={**os.environ, "TERM": "xterm", "COLUMNS": "160",
                               **(env or {})}) as child:
        os.close(slave)
        received = _drain(master)
        assert child.wait(timeout=120) == 0, received.decode(errors="replace")
    return received.decode(errors="replace")


def test_extract_shows_progress_on_a_terminal(tmp_path):
    out = tmp_path / "pairs.parquet"
    seen = on_terminal("extract", str(SHARED_WARCS / "wikipedia-2012-homepage.warc.gz"),
                       "--out", str(out))
    assert "\x1b[" in seen  # a live display
    assert "extracting" in seen and "1/1" in seen and "WARC files" in seen
    assert f"{out}: 17 pairs from 1 pages" in seen


SHARD_LINES = ["CC-X: 2 shards (2 newly registered)", "  CC-X/00000  warc_shards              done",
               "  CC-X/00000  ok (run 1a2b3c4d)", "  CC-X/00001  warc_shards              done",
               "  CC-X/00001  FAILED (run 5e6f7a8b)"]


def test_materialize_progress_prints_only_the_lines_when_not_on_a_terminal():
    stream = io.StringIO()
    with ShardRunProgress(stream) as progress:
        for text in SHARD_LINES:
            progress(text)
    assert stream.getvalue() == "".join(f"{t}\n" for t in SHARD_LINES)


def test_materialize_progress_counts_shards_on_a_terminal():
    master, slave = pty.openpty()
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(_drain(master)))
    reader.start()
    with os.fdopen(slave, "w") as terminal, ShardRunProgress(terminal) as progress:
        for text in SHARD_LINES:
            progress(text)
            print("a Dagster log line", file=sys.stderr)  # the CLI sends stderr to a file
    reader.join(timeout=30)
    seen = received[0].decode(errors="replace")
    assert "a Dagster log line" not in seen
    assert "materializing" in seen and "2/2" in seen and "shards" in seen
    assert all(text.strip() in seen for text in SHARD_LINES)


def test_extract_failure_names_the_file_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "pairs.parquet"
    missing = tmp_path / "missing.warc.gz"
    assert main(["extract", str(missing), "--out", str(out)]) == 2
    assert f"{missing}: cannot open" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_sample_drop_command(tmp_path, capsys):
    assert main(["sample-drop", str(tmp_path / "CC-X"), "--files", "2"]) == 0
    assert "crawl CC-X, 2 WARC files" in capsys.readouterr().out


def test_materialize_rejects_a_folder_that_is_not_a_drop(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("LAION_ASSETS_VAR", str(tmp_path / "var"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit):
        main(["materialize"])
    assert main(["materialize", "--drop", str(tmp_path / "empty")]) == 2
    assert "not a crawl drop" in capsys.readouterr().err


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The CLI as a user runs it: a new process, in `cwd`, with `env` over the test's one."""
    return subprocess.run([sys.executable, "-m", "laion_assets.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


def _actions(parser: argparse.ArgumentParser, path: str = "laion-assets"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _actions(child, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield path, action, parser


def test_every_option_has_help_and_shows_its_default():
    checked = 0
    for path, action, parser in _actions(_parser()):
        assert action.help, f"{path} {action.dest}: no help text"
        if action.default not in (None, False, "", []) and not action.required:
            text = parser.format_help()
            assert f"(default: {action.default})" in text, f"{path} {action.dest}"
            checked += 1
    assert checked >= 5


def test_version_from_any_directory(tmp_path):
    done = _cli("--version", cwd=tmp_path, env={})
    assert done.returncode == 0
    assert done.stdout.strip() == f"laion-assets {version('laion-assets')}"


def test_takedown_list_names_the_store_it_read_from_any_directory(tmp_path):
    done = _cli("takedown", "list", cwd=tmp_path, env={})
    assert done.returncode == 0, done.stderr
    ledger = project_root() / "var" / "store" / "takedowns" / "ledger"
    assert done.stdout.startswith(f"takedown ledger {ledger}: ")


def test_takedown_add_and_list_say_what_they_did(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LAION_ASSETS_STORE", str(tmp_path / "store"))
    assert main(["takedown", "add", "--url", "https://a.example/x.jpg", "--reason", "asked",
                 "--requested-by", "owner@a.example"]) == 0
    out = capsys.readouterr().out
    assert f"no release in {tmp_path / 'store' / 'releases'} yet" in out
    assert main(["takedown", "add", "--md5", "0" * 32, "--reason", "csam list"]) == 0
    assert "takedown_sensor cuts it" in capsys.readouterr().out
    assert main(["takedown", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"takedown ledger {tmp_path / 'store/takedowns/ledger'}: 2 entries"
    assert lines[1].endswith("asked  (requested by owner@a.example)")
    assert lines[2].endswith("csam list  (requested by unknown)")


def test_register_then_provenance_says_what_was_searched(tmp_path, drops_dir):
    env = {"LAION_ASSETS_VAR": str(tmp_path / "var"), "DAGSTER_HOME": str(tmp_path / "home"),
           "LAION_ASSETS_SHARD_SIZE": "2"}
    (tmp_path / "home").mkdir()
    done = _cli("register", "--drop", str(drops_dir / "CC-MAIN-SAMPLE"), cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("CC-MAIN-SAMPLE: 2 shards registered (2 new)")
    done = _cli("provenance", "--url", "https://nowhere.example/x.jpg", cwd=tmp_path, env=env)
    assert done.returncode == 2
    assert ("no release is committed; 2 shards registered (CC-MAIN-SAMPLE), the 0 with "
            "extracted_pairs scanned, 2 not extracted yet (CC-MAIN-SAMPLE/00000, "
            "CC-MAIN-SAMPLE/00001)") in done.stderr
