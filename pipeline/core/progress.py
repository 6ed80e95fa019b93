"""Named, timed steps of a stage, shown as one rich progress line (on stderr) when asked."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn


class Steps:
    """Named, timed steps shown as a rich spinner line when `progress` is on."""

    def __init__(self, total: int, progress: bool, title: str):
        self.timings: dict[str, float] = {}
        self.progress = progress
        self._bar = None
        if progress:
            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._bar.add_task(title, total=total)
            self._bar.start()

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        if self._bar is not None:
            self._bar.update(self._task, description=name)
        start = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - start, 3)
            if self._bar is not None:
                self._bar.advance(self._task)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Hide the bar while a callee shows its own (rich allows one live display at a time)."""
        if self._bar is not None:
            self._bar.stop()
        try:
            yield
        finally:
            if self._bar is not None:
                self._bar.start()

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
