"""What every stage's benchmark returns, and how time and peak memory are measured.

Contract for stage modules (``streaming_core.pipelines.<stage>``): a function
``benchmark(*, full: bool, device: str, dtype: torch.dtype, steps: int | None) -> BenchResult | list``
that builds its models with random weights (tiny, or full size with ``full=True``, directly on the
device, never from a weights file), runs its stage and returns what it measured. ``python -m
streaming_core bench`` calls it.

Timing model: a stage run has a fixed part (prompt encoding, VAE decode, ...) and a per-step part.
Running ``1`` and ``K`` steps separates them, so the report can state the cost at the official
step count without running all of it. An untimed 1-step run warms up first (kernel selection,
allocator, lazily loaded tokenizers): on a busy CPU the first run was measured slower than a 2-step
run without it.
"""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Optional

import torch


@dataclass
class BenchResult:
    stage: str
    device: str
    dtype: str
    size: str  # e.g. "256x256" (frame size the stage produced)
    frames: int  # frames one run produces
    steps: int  # denoising steps of the timed run
    seconds: float  # wall time of the timed run
    seconds_per_step: float
    fixed_seconds: float  # the part that does not depend on the step count
    official_steps: int  # the step count the official pipeline uses
    peak_memory_bytes: Optional[int]
    memory_kind: str  # "GPU allocated" or "process peak RSS"
    note: str = ""
    per: str = "step"  # what ``steps`` counts: denoising steps, or frames (a stage timed frame by frame)

    @property
    def seconds_per_frame(self) -> float:
        """At the official step count."""
        return (self.fixed_seconds + self.official_steps * self.seconds_per_step) / max(self.frames, 1)

    def line(self) -> str:
        mem = "n/a" if self.peak_memory_bytes is None else f"{self.peak_memory_bytes / 2**30:.2f} GiB"
        if self.per == "frame":
            timing = (f"{self.steps} frames in {self.seconds:.2f}s ({self.seconds_per_step:.3f} s per further frame)"
                      f"  -> {self.seconds_per_frame:.3f} s/frame")
        else:
            timing = (f"{self.frames} frames, {self.steps} steps in {self.seconds:.2f}s ({self.seconds_per_step:.3f} "
                      f"s/step + {self.fixed_seconds:.2f}s fixed)  -> {self.seconds_per_frame:.3f} s/frame at "
                      f"{self.official_steps} steps")
        return (f"{self.stage:<8} {self.device:<7} {self.dtype:<8} {self.size:>9}  {timing}  peak {mem} "
                f"({self.memory_kind})" + (f"  [{self.note}]" if self.note else ""))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _process_peak_rss() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


@contextmanager
def peak_memory(device: torch.device):
    """Yields a callable giving (peak bytes, kind) of the block so far: GPU allocations on CUDA,
    the process's peak resident memory (whole process, monotonic) elsewhere."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        yield lambda: (torch.cuda.max_memory_allocated(device), "GPU allocated")
    else:
        yield lambda: (_process_peak_rss(), "process peak RSS")


def timed(fn: Callable[[], object], device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


# Set by the bench command: called as ``on_first_run(seconds of the 1-step run, steps of the run to come)``
# so it can say how long the rest takes.
on_first_run: Optional[Callable[[float, int], None]] = None


def measure_steps(run: Callable[[int], object], steps: int, device: torch.device,
                  warm_up: bool = True) -> tuple[float, float, float]:
    """(seconds of ``run(steps)``, seconds per step, fixed seconds) from a 1-step and a ``steps``-step
    run, after an untimed 1-step warm-up run unless ``warm_up`` is False."""
    if steps < 2:
        raise ValueError("measuring needs at least 2 steps")
    if warm_up:
        run(1)  # warm-up: kernels, caches, allocator
    one = timed(lambda: run(1), device)
    if on_first_run is not None:
        on_first_run(one, steps)
    many = timed(lambda: run(steps), device)
    per_step = max((many - one) / (steps - 1), 0.0)
    return many, per_step, max(one - per_step, 0.0)
