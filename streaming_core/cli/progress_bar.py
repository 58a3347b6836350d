"""A text progress bar on stderr that speaks the pipelines' ``on_step(done, total, preview)`` protocol.

On a terminal it redraws one line; elsewhere (logs, CI) it prints a line whenever a chunk finishes
(the pipelines attach a preview to the last step of each chunk) and at the end.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from ..progress import Preview, is_frames


class ProgressBar:
    def __init__(self, label: str = "", stream: Optional[TextIO] = None, width: int = 30):
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.started = time.monotonic()
        self.first_done: Optional[int] = None
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _line(self, done: int, total: int) -> str:
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        if self.first_done is None:
            self.first_done = done - 1  # a resumed run starts counting where it stopped
        fresh = max(done - self.first_done, 1)
        eta = elapsed / fresh * (total - done)
        return f"{self.label}[{bar}] {done}/{total} steps, {elapsed:.0f}s elapsed, ~{eta:.0f}s left"

    def __call__(self, done: int, total: int, preview: Preview = None) -> None:
        line = self._line(done, total)
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
            self.stream.flush()
        elif is_frames(preview) or done >= total:  # a line per finished chunk (its frames), not per step
            self.stream.write(line + "\n")
            self.stream.flush()
