"""One progress-bar helper for every long loop (decoding, features, epochs).

Bars are drawn only when asked and when stderr is a terminal: logs read by SageMaker-style
metric regexes or CI stay free of control characters.
"""

from __future__ import annotations

import sys
from types import TracebackType


class Bar:
    def __init__(self, enabled: bool, description: str, total: int, *, show_loss: bool = False) -> None:
        self.enabled = enabled and sys.stderr.isatty()
        self.description, self.total, self.show_loss = description, total, show_loss

    def __enter__(self) -> Bar:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
            if self.show_loss:
                columns.append(TextColumn("loss {task.fields[loss]}"))
            self.progress = Progress(
                *columns, TimeRemainingColumn(), console=Console(stderr=True), transient=True
            )
            self.progress.start()
            self.task = self.progress.add_task(self.description, total=self.total, loss="-")
        return self

    def advance(self, n: int, loss: float | None = None) -> None:
        if self.enabled:
            fields = {"loss": f"{loss:.4f}"} if loss is not None else {}
            self.progress.update(self.task, advance=n, **fields)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.enabled:
            self.progress.stop()
