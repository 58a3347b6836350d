"""A text progress bar on stderr that speaks the pipelines' ``on_step(done, total, preview)`` protocol.

On a terminal it redraws one line. Elsewhere (logs, CI) it prints a line at the first step (so the time
left is known as soon as one step has run), whenever a chunk finishes (the pipelines attach a preview to
the last step of each chunk; the per-step latent previews do not count), at least every ``every`` seconds, and at the end. When the first step
says the run will take long, it says so once, with the command's hint on how to make it shorter.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

from ..progress import Preview, is_frames

LONG_RUN_SECONDS = 600.0  # a run estimated longer than this after its first step gets a warning


def duration(seconds: float) -> str:
    """``42 s``, ``7 min``, ``2.5 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class ProgressBar:
    def __init__(self, label: str = "", stream: Optional[TextIO] = None, width: int = 30, every: float = 30.0,
                 long_run_hint: str = "", unit: str = "steps"):
        self.label = label
        self.unit = unit
        self.extra = ""  # appended to every line (e.g. "12/640 frames final"); the caller keeps it current
        self.stream = stream or sys.stderr
        self.width = width
        self.every = every
        self.long_run_hint = long_run_hint
        self.started = time.monotonic()
        self.first_done: Optional[int] = None
        self.last_print = 0.0
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _eta(self, done: int, total: int) -> float:
        if self.first_done is None:
            self.first_done = done - 1  # a resumed run starts counting where it stopped
        fresh = max(done - self.first_done, 1)
        return (time.monotonic() - self.started) / fresh * (total - done)

    def _line(self, done: int, total: int, eta: float) -> str:
        filled = int(self.width * done / max(total, 1))
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.started
        return (f"{self.label}[{bar}] {done}/{total} {self.unit}, {duration(elapsed)} elapsed, ~{duration(eta)} left"
                + (f", {self.extra}" if self.extra else ""))

    def __call__(self, done: int, total: int, preview: Preview = None) -> None:
        first = self.first_done is None
        eta = self._eta(done, total)
        line = self._line(done, total, eta)
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done >= total else ""))
        elif first or is_frames(preview) or done >= total or now - self.last_print >= self.every:
            # a line per finished chunk (its frames), not per step's latent preview
            self.stream.write(line + "\n")
            self.last_print = now
        if first and eta > LONG_RUN_SECONDS:
            self.stream.write(("\n" if self.tty else "") + f"warning: at the pace of the first step this run takes "
                              f"about {duration(eta)} more" + (f"; {self.long_run_hint}" if self.long_run_hint else "")
                              + "\n")
        self.stream.flush()
