"""Seam measure: how much a chunked video jumps where its chunks meet, compared with how it moves
elsewhere.

The paper (appendix 9.3) measures seams with the standard deviation of optical-flow magnitudes
around chunk borders; this is a flow-free stand-in that catches the same thing and works on pixels
or latents alike. With ``d_t`` the mean squared difference between frames t and t+1:

    border_k  = max of d_t over the transitions that touch overlap k (from the frame before the
                overlap to its last frame: wherever a cut inside the overlap may have fallen)
    typical   = median of d_t over the transitions outside every overlap (all, if none are)
    seam_k    = border_k / typical

A video without seams has ``seam_k`` near 1 (a little above: it is a max over several transitions
against a median); a hard cut between chunks that disagree makes it large. ``seam_score`` is the
mean over the overlaps. Pure functions: no model, no randomness.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..sampling.blend import Window


@dataclass(frozen=True)
class SeamReport:
    per_overlap: tuple[float, ...]  # seam_k, one per pair of neighbouring windows
    typical: float  # the median transition energy the borders are compared with
    transitions: torch.Tensor  # d_t, (F - 1,)

    @property
    def score(self) -> float:
        return sum(self.per_overlap) / len(self.per_overlap) if self.per_overlap else 1.0


def transition_energy(video: torch.Tensor, frame_dim: Optional[int] = None) -> torch.Tensor:
    """d_t = mean((x_{t+1} - x_t)^2) per transition. ``video``: (F, H, W, C) frames (frame_dim 0)
    or (B, C, F, h, w) latents (frame_dim 2)."""
    if frame_dim is None:
        frame_dim = {4: 0, 5: 2}.get(video.ndim)
        if frame_dim is None:
            raise ValueError(f"expected (F, H, W, C) or (B, C, F, h, w), got shape {tuple(video.shape)}")
    x = video.float().movedim(frame_dim, 0)
    diff = (x[1:] - x[:-1]).pow(2)
    return diff.reshape(diff.shape[0], -1).mean(dim=1)


def overlap_transitions(windows: Sequence[Window]) -> list[tuple[int, int]]:
    """Per pair of neighbouring windows, the transitions [a, b) (t -> t+1 for a <= t < b) where a
    seam can be: from the frame before the overlap to its last frame (the single transition between
    the windows when they do not overlap)."""
    spans = []
    for prev, cur in zip(windows[:-1], windows[1:]):
        if cur.start >= prev.end:
            spans.append((cur.start - 1, cur.start))
        else:
            spans.append((max(cur.start - 1, 0), prev.end))
    return spans


def seam_report_from_transitions(d: torch.Tensor, windows: Sequence[Window]) -> SeamReport:
    """``seam_report`` over precomputed transition energies d_t (F - 1 values)."""
    d = torch.as_tensor(d, dtype=torch.float64)
    num_frames = d.shape[0] + 1
    if windows[-1].end != num_frames:
        raise ValueError(f"the windows cover {windows[-1].end} frames, the video has {num_frames}")
    in_overlap = torch.zeros(num_frames, dtype=torch.bool)
    for prev, cur in zip(windows[:-1], windows[1:]):
        if cur.start < prev.end:
            in_overlap[cur.start:prev.end] = True
    borders = overlap_transitions(windows)
    outside = ~(in_overlap[:-1] | in_overlap[1:])
    typical_values = d[outside] if outside.any() else d
    typical = float(typical_values.median().clamp_min(1e-20))
    per_overlap = tuple(float(d[a:b].max()) / typical for a, b in borders)
    return SeamReport(per_overlap, typical, d)


def seam_report(video: torch.Tensor, windows: Sequence[Window], frame_dim: Optional[int] = None) -> SeamReport:
    return seam_report_from_transitions(transition_energy(video, frame_dim), windows)


def seam_score(video: torch.Tensor, windows: Sequence[Window], frame_dim: Optional[int] = None) -> float:
    """Mean border-to-typical ratio of frame-to-frame change (see module doc); ~1 means seamless."""
    return seam_report(video, windows, frame_dim).score


@dataclass(frozen=True)
class FlowSmoothness:
    """How evenly a video moves (the paper's appendix measure of seams: the spread of optical-flow
    magnitudes over time). ``overall``: standard deviation of the per-transition mean flow magnitude
    over the whole video; ``at_seams``: the same spread inside each chunk overlap (where a seam can
    be), averaged over the overlaps, None without overlaps. A seam shows as a jump of the magnitude,
    i.e. ``at_seams`` above ``overall``."""

    overall: float
    at_seams: Optional[float]
    per_overlap: tuple[float, ...]


def flow_smoothness(magnitudes: Sequence[float], windows: Optional[Sequence[Window]] = None) -> FlowSmoothness:
    m = torch.as_tensor(list(magnitudes), dtype=torch.float64)
    if m.numel() == 0:
        raise ValueError("no flow magnitudes: the video needs at least 2 frames")
    overall = float(m.std(unbiased=False))
    per = ()
    if windows is not None and len(windows) > 1:
        if windows[-1].end != m.numel() + 1:
            raise ValueError(f"the windows cover {windows[-1].end} frames, the video has {m.numel() + 1}")
        per = tuple(float(m[a:b].std(unbiased=False)) for a, b in overlap_transitions(windows))
    return FlowSmoothness(overall, sum(per) / len(per) if per else None, per)
