"""Peak memory of a piece of work, beside what was allocated before it: the measurement the memory
estimates are checked against (tests on the CPU, the GPU benchmark).

On a CUDA device: ``torch.cuda.max_memory_allocated`` after a reset, minus the allocation at the start.
On the CPU: PyTorch's profiler with ``profile_memory=True`` records every CPU tensor allocation and
free with the running total ("Total Allocated", counted from the start of the profile); the peak is
the largest total. (tracemalloc sees only Python's allocator, not tensor storage; RSS keeps freed pages
and counts the allocator's caching, so neither measures tensors.)
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def peak_bytes(work: Callable[[], T], device="cpu") -> tuple[int, T]:
    """(peak bytes of tensors allocated while ``work()`` ran, its result)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = work()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - start, result
    activities = [torch.profiler.ProfilerActivity.CPU]
    with torch.profiler.profile(activities=activities, profile_memory=True) as prof:
        result = work()
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        prof.export_chrome_trace(path)
        with open(path) as f:
            events = json.load(f)["traceEvents"]
    finally:
        os.remove(path)
    totals = [e["args"]["Total Allocated"] for e in events
              if e.get("name") == "[memory]" and e["args"].get("Device Type", 0) == 0]
    return max(totals, default=0), result
