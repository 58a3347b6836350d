"""Peak RSS of the harness's ComfyUI server, per queued prompt: what a long-video graph costs in host RAM.

Polled by ``comfy_harness_util.run_workflows(watch=...)`` (every 0.1 s). It finds the server the harness
started for an output folder (its command line names that folder and its port), asks ComfyUI's ``/queue``
which prompt is running, and reads the server's ``VmHWM`` (the kernel's exact peak resident set, not a
sample). At each change of the running prompt it resets that peak (``/proc/PID/clear_refs`` = 5, Linux
4.0+), so each prompt's peak is its own even when several prompts share one server: models loaded by the
first prompt stay resident and cached node outputs stay in RAM, as they do for a user who queues again.
The last tenth of a second of a prompt can be missed; a whole video held in RAM lasts far longer.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from comfy_harness_util import running_prompt


@dataclass
class PromptMemory:
    before_mb: float  # the server's resident set one poll before the prompt was seen running (<= its start)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (monotonic seconds, VmHWM in MB)

    @property
    def peak_mb(self) -> float:
        """Its peak resident set from when it was seen running to when it was seen ending."""
        return max((peak for _, peak in self.samples), default=0.0)

    def peak_by(self, fraction: float) -> float:
        """The peak reached by ``fraction`` of the prompt's observed run time (0 < fraction <= 1): a
        video streamed reaches its peak in its first frames, one collected grows to its end."""
        start, end = self.samples[0][0], self.samples[-1][0]
        return max(peak for t, peak in self.samples if t <= start + fraction * (end - start))


class ServerMemoryProbe:
    """``probe(output_dir)`` once per poll; afterwards ``probe.prompts`` maps each prompt id seen running to
    its ``PromptMemory`` and ``probe.server_peak_mb`` is the peak over the whole session (before any reset).

    reset_per_prompt: reset the kernel's peak at each prompt change (needs write access to the server's
        ``/proc/PID/clear_refs``, which its owner has); ``reset_error`` says why that failed, if it did.
    """

    def __init__(self, reset_per_prompt: bool = True):
        self.reset_per_prompt = reset_per_prompt
        self.pid: Optional[int] = None
        self.port: Optional[int] = None
        self.prompts: dict[str, PromptMemory] = {}
        self.server_peak_mb = 0.0
        self.reset_error: Optional[str] = None
        self._running: Optional[str] = None
        self._last_rss_mb: Optional[float] = None

    def __call__(self, output_dir: Path) -> None:
        if self.pid is None:
            found = find_server(str(output_dir))
            if found is None:
                return
            self.pid, self.port = found
        before = self._last_rss_mb
        status = self._sample()
        if status is None:  # the server has stopped
            return
        reachable, running = running_prompt(self.port) if self.port is not None else (False, None)
        if not reachable or running == self._running:
            return
        if self._sample() is None:  # the peak up to this change belongs to the prompt that was running
            return
        self._running = running
        if self.reset_per_prompt and self.reset_error is None:
            try:
                Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            except OSError as exc:
                self.reset_error = f"cannot reset the peak RSS of PID {self.pid} ({exc})"
        if running is not None and running not in self.prompts:
            self.prompts[running] = PromptMemory(before if before is not None else status["VmRSS"])
        self._sample()

    def _sample(self) -> Optional[dict[str, float]]:
        """Read the server's VmRSS and VmHWM; the peak counts for the prompt running now."""
        status = _read_status(self.pid)
        if status is None:
            return None
        self._last_rss_mb = status["VmRSS"]
        self.server_peak_mb = max(self.server_peak_mb, status["VmHWM"])
        record = self.prompts.get(self._running) if self._running is not None else None
        if record is not None:
            record.samples.append((time.monotonic(), status["VmHWM"]))
        return status


def find_server(output_dir: str) -> Optional[tuple[int, Optional[int]]]:
    """(PID, port) of the ComfyUI ``main.py`` whose command line names ``output_dir``, or None."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            words = [w.decode(errors="replace") for w in Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")]
        except OSError:
            continue
        if any(w.endswith("main.py") for w in words) and output_dir in words:
            port = words[words.index("--port") + 1] if "--port" in words[:-1] else None
            return int(entry), int(port) if port and port.isdigit() else None
    return None


def _read_status(pid: int) -> Optional[dict[str, float]]:
    """VmHWM and VmRSS of a process in MB, or None when it is gone."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    return values if len(values) == 2 else None
