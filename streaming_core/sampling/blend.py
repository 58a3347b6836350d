"""Overlapping windows over a long video and the randomized hard-cut fuse (paper Sec. 4.3).

One implementation serves the Randomized Blend Refiner and the ComfyUI model patch: split the frame
axis into windows of ``chunk`` frames that overlap by ``overlap``; after every model call, inside
each overlap, frames before a cut come from the earlier window and frames from the cut on from the
later one. The official code draws ``offset = random.randint(0, overlap - 1)`` per window per step
and lets the later window write ``[start + offset, end)``; ``draw_offsets`` keeps exactly that
meaning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

import torch

BLEND_MODES = ("randomized", "shared_noise", "independent")


@dataclass(frozen=True)
class Window:
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def chunk_windows(num_frames: int, chunk: int, overlap: int) -> list[Window]:
    """Windows of ``chunk`` frames stepping by ``chunk - overlap``; the last one is moved back to end
    at ``num_frames`` when the length does not tile exactly (its overlap with the previous window
    then grows). Lengths of the official form ``k*(chunk-overlap) + overlap`` give the official tiling.
    """
    if chunk < 1:
        raise ValueError(f"chunk must be at least 1 frame, got {chunk}")
    if not 0 <= overlap < chunk:
        raise ValueError(f"overlap must be in [0, chunk) = [0, {chunk}), got {overlap}: the windows would not advance")
    if num_frames < chunk:
        raise ValueError(f"the video has {num_frames} frames, fewer than one chunk of {chunk}: lower the chunk size")
    stride = chunk - overlap
    starts = list(range(0, num_frames - chunk + 1, stride))
    if starts[-1] + chunk < num_frames:
        starts.append(num_frames - chunk)
    return [Window(s, s + chunk) for s in starts]


def overlaps(windows: Sequence[Window]) -> list[int]:
    """Frames shared by each window and the one before it (one entry per window after the first)."""
    return [prev.end - cur.start for prev, cur in zip(windows[:-1], windows[1:])]


def draw_offsets(windows: Sequence[Window], mode: str, rng: random.Random) -> list[int]:
    """Per window after the first: where inside its overlap the window starts to win.

    ``randomized``: uniform in [0, overlap-1] as the official ``random.randint(0, overlap-1)``;
    ``shared_noise`` / ``independent``: a fixed cut in the middle of the overlap.
    """
    out = []
    for ov in overlaps(windows):
        if ov <= 0:
            out.append(0)
        elif mode == "randomized":
            out.append(rng.randint(0, ov - 1))
        elif mode in ("shared_noise", "independent", "middle"):
            out.append(ov // 2)
        else:
            raise ValueError(f"unknown blend mode {mode!r}; one of {', '.join(BLEND_MODES)} (or 'middle')")
    return out


def fuse_hard_cut(window_outputs: Sequence[torch.Tensor], windows: Sequence[Window], offsets: Sequence[int],
                  dim: int, out: torch.Tensor | None = None) -> torch.Tensor:
    """Assemble full-length values from per-window values: window 0 writes everything, each later
    window overwrites from ``start + offset`` on. Every frame ends up written exactly once by the
    window that owns it."""
    if len(window_outputs) != len(windows) or len(offsets) != len(windows) - 1:
        raise ValueError("need one output per window and one offset per window after the first")
    if out is None:
        shape = list(window_outputs[0].shape)
        shape[dim] = windows[-1].end
        out = window_outputs[0].new_empty(shape)
    for index, value in enumerate(window_outputs):
        write_window(out, value, windows, offsets, index, dim)
    return out


def write_window(out: torch.Tensor, value: torch.Tensor, windows: Sequence[Window], offsets: Sequence[int],
                 index: int, dim: int) -> torch.Tensor:
    """Write window ``index``'s owned frames into ``out`` as soon as that window has run, so only one
    window's output need exist besides the result (``fuse_hard_cut`` is this, for every window in order)."""
    window = windows[index]
    skip = 0 if index == 0 else offsets[index - 1]
    if not 0 <= skip <= window.length:
        raise ValueError(f"offset {skip} outside window {window}")
    out.narrow(dim, window.start + skip, window.length - skip).copy_(value.narrow(dim, skip, window.length - skip))
    return out


def owner_of_frames(windows: Sequence[Window], offsets: Sequence[int]) -> list[int]:
    """Index of the window each frame is taken from (for tests, previews and the docs)."""
    owner = [0] * windows[-1].end
    for i, w in enumerate(windows):
        skip = 0 if i == 0 else offsets[i - 1]
        for f in range(w.start + skip, w.end):
            owner[f] = i
    return owner

