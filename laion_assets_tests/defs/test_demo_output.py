"""The demo's lines on the cut-down sample: a line per stage per shard, a labelled summary
with the untrained-model caveat once, the release line on every run, and next steps whose
URL provenance finds."""

from laion_assets.cli import _parser
from laion_assets.defs.headless import cut_release
from laion_assets.defs.summary import LEGEND, UNTRAINED, next_steps, print_summary, release_line
from laion_assets.pipeline.release.provenance import trace
from laion_assets_tests import chains

instance = chains.module_instance

STAGES = ("warc_shards", "extracted_pairs", "downloaded_images", "clip_scored_pairs",
          "safety_filtered_pairs")


def test_demo_lines(tmp_path, sample_drop_template, instance, capsys, monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(chains, "materialize_drop", _logging_to(lines))
    defs = chains.materialize_sample_shards(tmp_path, sample_drop_template, instance)
    shards = ["CC-MAIN-SAMPLE/00000", "CC-MAIN-SAMPLE/00001"]
    assert lines[0] == "CC-MAIN-SAMPLE: 2 shards (2 newly registered)"
    stage_lines = [line.split() for line in lines[1:] if line.split()[-1] == "done"]
    assert stage_lines == [[s, a, "done"] for s in shards for a in STAGES]

    print_summary(defs, shards)
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("shard"))
    assert header.split() == ["shard", "files", "MB", "pages", "pairs", "images", "scored",
                              "mean_sim", "safe"]
    assert LEGEND in out
    assert out.count(UNTRAINED) == 1
    assert "WARNING" not in out

    store = defs.resources["dataset_store"].store()
    assert release_line(store, "laion-assets", shards) is None  # the demo cuts v1 then
    ok, _ = cut_release(defs, instance, {"name": "laion-assets"})
    assert ok
    again = release_line(store, "laion-assets", shards)
    assert again.startswith("release laion-assets v1 unchanged: nothing new (")
    steps = next_steps(store, "laion-assets")
    assert steps[0].startswith("make ui")
    url = steps[1].split("'")[1]
    assert steps[1].startswith(f"laion-assets provenance --url '{url}'")
    assert trace(store, url=url, scan_shards=False)[0]["url"] == url
    explore = steps[2].split("#")[0].split()
    assert explore[:2] == ["laion-assets", "explore"]
    parser_args = _parser().parse_args(explore[1:])  # the printed command is one the CLI takes
    assert (parser_args.release, parser_args.build_index) == ("laion-assets", True)


def _logging_to(lines: list[str]):
    real = chains.materialize_drop

    def materialize(drop, defs, instance, log=print):
        return real(drop, defs, instance, log=lines.append)
    return materialize
