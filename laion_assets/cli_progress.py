"""Progress of long CLI commands: a live bar (rich) when stdout is a terminal, and nothing
beyond the command's own lines when it is not (logs, CI, pipes)."""

from __future__ import annotations

import re
import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

SHARDS_LINE = re.compile(r": (\d+) shards \(")  # materialize_drop's first line
SHARD_DONE = re.compile(r"^\s+(\S+)\s+(ok|FAILED) \(run ")  # ... and its last line per shard
ASSET_DONE = re.compile(r"^\s+(\S+)\s+(\w+)\s+done$")


class CommandProgress:
    """A context manager: `advance`, `set_total`, `note` (what is being done now) move the bar;
    `line` prints a line above it (or plainly, when stdout is not a terminal)."""

    def __init__(self, description: str, total: float | None = None, unit: str = "",
                 stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty()
        self._bar: Progress | None = None
        if self.live:
            self._bar = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                MofNCompleteColumn(), TextColumn("{task.fields[unit]}"), TimeElapsedColumn(),
                TextColumn("{task.fields[note]}"), console=Console(file=self.stream),
                redirect_stderr=False)  # stderr stays where the command sent it (a log file)
            self._task = self._bar.add_task(description, total=total, unit=unit, note="")

    def __enter__(self) -> CommandProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, n: float = 1) -> None:
        if self._bar is not None:
            self._bar.advance(self._task, n)

    def set_total(self, total: float) -> None:
        if self._bar is not None:
            self._bar.update(self._task, total=total)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, note=text)

    def line(self, text: str) -> None:
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False, soft_wrap=True)
        else:
            print(text, file=self.stream, flush=True)


class ShardRunProgress(CommandProgress):
    """The `log` of `materialize_drop`: its lines as they are, and on a terminal a bar over
    the drop's shards noting the asset each one has reached."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__("materializing", unit="shards", stream=stream)

    def __call__(self, text: str) -> None:
        self.line(text)
        if total := SHARDS_LINE.search(text):
            self.set_total(int(total[1]))
        elif done := ASSET_DONE.match(text):
            self.note(f"{done[1]} {done[2]}")
        elif SHARD_DONE.match(text):
            self.advance()
