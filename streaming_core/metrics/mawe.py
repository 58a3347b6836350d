"""MAWE, the paper's motion-aware warp error, computed as the official ``mawe.py`` does (spec §7).

For every pair of consecutive frames (t, t+1), both resized to 720x720 (bilinear, no antialiasing):

    flow_t   RAFT-large flow from t to t+1 (12 refinement steps, the last one)
    OFS_t    mean over pixels of |flow_t|, in pixels                    (how much the video moves)
    warp     forward splatting: source pixel p of frame t lands on round(p + flow_t(p)); targets off
             the frame are dropped; where several land on one target the last in raster order wins
             (the official numpy assignment order); targets nothing lands on are unknown
    W_t      mean over known pixels and the 3 channels of (I_{t+1} - warp(I_t))^2, 0..255 scale
             (all entries are the divisor when no pixel is known)
    MAWE   = mean over t of W_t / (c * OFS_t), c = 9.5

A mean of per-pair ratios, not a ratio of means. It is low when the video is consistent (small warp
error) *and* moves (a still video has W_t = 0 trivially, so the motion in the divisor keeps a frozen
video from winning). A pair with W_t = 0 counts 0 (also when OFS_t = 0, where the official division
gives NaN); W_t > 0 with OFS_t = 0 is infinite, as in the official division.

The flow comes from any callable ``flow(frame_t, frame_t1) -> (2, S, S)`` over resized uint8-valued
(3, S, S) frames, so tests inject the true flow; ``RaftPairFlow`` wraps the pack's torchvision RAFT
(features computed once per frame, not twice per pair).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch
from torchvision.transforms.functional import resize

from ..errors import InputError

MAWE_SIZE = 720  # the official script resizes every frame to 720x720
MAWE_COEFF = 9.5  # c, the official --coeff

FlowFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class MaweResult:
    warp_error: tuple[float, ...]  # W_t per pair
    flow_magnitude: tuple[float, ...]  # OFS_t per pair (pixels at the working size)
    ratios: tuple[float, ...]  # W_t / (c * OFS_t)
    size: int
    coeff: float

    @property
    def mawe(self) -> float:
        return sum(self.ratios) / len(self.ratios)

    @property
    def mean_warp_error(self) -> float:
        return sum(self.warp_error) / len(self.warp_error)

    @property
    def mean_flow_magnitude(self) -> float:
        return sum(self.flow_magnitude) / len(self.flow_magnitude)


def as_uint8_chw(frame: torch.Tensor) -> torch.Tensor:
    """(H, W, 3) uint8 or float 0..1 (rounded, as saving a video would) -> (3, H, W) uint8."""
    if frame.ndim != 3 or frame.shape[-1] not in (3, 4):
        raise InputError(f"a frame must be (height, width, 3), got {tuple(frame.shape)}")
    frame = frame[..., :3]
    if frame.dtype != torch.uint8:
        frame = frame.float().clamp(0, 1).mul(255).round().to(torch.uint8)
    return frame.permute(2, 0, 1)


def resize_for_mawe(frame: torch.Tensor, size: int = MAWE_SIZE) -> torch.Tensor:
    """(H, W, 3) frame -> (3, size, size) uint8, bilinear without antialiasing, as the official script."""
    return resize(as_uint8_chw(frame), [size, size], antialias=False)


def splat_forward(image: torch.Tensor, flow: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward-warp ``image`` (C, H, W) by ``flow`` (2, H, W; dx, dy in pixels).

    Returns the warped image (unknown targets 0) and the (H, W) mask of targets that received a pixel.
    Collisions: the source pixel latest in raster order wins, deterministically (scatter with amax
    over source indices) where a plain indexed assignment would leave the winner unspecified.
    """
    c, h, w = image.shape
    if tuple(flow.shape) != (2, h, w):
        raise InputError(f"flow {tuple(flow.shape)} does not match a {h}x{w} frame (expected (2, {h}, {w}))")
    device = image.device
    ys, xs = torch.meshgrid(torch.arange(h, device=device, dtype=torch.float32),
                            torch.arange(w, device=device, dtype=torch.float32), indexing="ij")
    tx = torch.round(xs + flow[0].float()).long()
    ty = torch.round(ys + flow[1].float()).long()
    inside = ((tx >= 0) & (tx < w) & (ty >= 0) & (ty < h)).reshape(-1)
    source = torch.arange(h * w, device=device)[inside]
    target = (ty * w + tx).reshape(-1)[inside]
    owner = torch.full((h * w,), -1, dtype=torch.long, device=device)
    owner.scatter_reduce_(0, target, source, reduce="amax", include_self=True)
    known = owner >= 0
    flat = image.reshape(c, h * w)
    warped = torch.zeros_like(flat)
    warped[:, known] = flat[:, owner[known]]
    return warped.reshape(c, h, w), known.reshape(h, w)


def warp_error(target: torch.Tensor, warped: torch.Tensor, known: torch.Tensor) -> float:
    """Mean squared difference over known pixels and all channels, on the 0..255 scale."""
    diff = (target.double() - warped.double()).pow(2) * known
    entries = int(known.sum()) * target.shape[0]
    return float(diff.sum() / (entries if entries > 0 else diff.numel()))


def pair_ratio(w: float, ofs: float, coeff: float) -> float:
    if w == 0.0:
        return 0.0
    return w / (coeff * ofs) if ofs > 0 else math.inf


def mawe(frames: Iterable[torch.Tensor], flow: FlowFn, *, size: int = MAWE_SIZE, coeff: float = MAWE_COEFF,
         device: Optional[torch.device | str] = None, on_pair: Optional[Callable[[int], None]] = None) -> MaweResult:
    """MAWE of a video given as an iterable of (H, W, 3) frames (uint8, or float 0..1), streamed:
    only two resized frames are held at a time. ``on_pair(pairs_done)`` after each pair (progress;
    raise in it to stop)."""
    device = torch.device(device) if device is not None else torch.device("cpu")
    errors, motions, ratios = [], [], []
    prev = None
    for frame in frames:
        cur = resize_for_mawe(frame, size).to(device)
        if prev is not None:
            f = flow(prev, cur)
            f = f[0] if f.ndim == 4 else f
            warped, known = splat_forward(prev.float(), f)
            w = warp_error(cur.float(), warped, known)
            ofs = float(f.float().norm(dim=0).mean())
            errors.append(w)
            motions.append(ofs)
            ratios.append(pair_ratio(w, ofs, coeff))
            if on_pair is not None:
                on_pair(len(errors))
        prev = cur
    if not errors:
        raise InputError("MAWE needs at least 2 frames (it compares consecutive frames); the video has "
                         f"{0 if prev is None else 1}")
    return MaweResult(tuple(errors), tuple(motions), tuple(ratios), size, coeff)


def _to_raft_input(frame: torch.Tensor, device) -> torch.Tensor:
    """(3, S, S) uint8 -> (1, 3, S, S) in [-1, 1] in the order of the weights' transforms (ConvertImageDtype,
    then Normalize(0.5, 0.5))."""
    return frame.to(device).float().div(255.0).sub(0.5).div(0.5)[None]


class RaftPairFlow:
    """``FlowFn`` over the pack's ``RaftFlow``: frames are mapped to [-1, 1] (the weights' transforms:
    uint8 -> [0, 1] -> normalise 0.5/0.5) and each frame's features are computed once, reused as the
    first image of the next pair."""

    def __init__(self, raft):
        self.raft = raft
        self._cache: Optional[tuple[torch.Tensor, torch.Tensor]] = None

    def _features(self, frame: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if self._cache is not None and self._cache[0] is frame:
            return self._cache[1]
        return self.raft.features(image)

    @torch.no_grad()
    def __call__(self, frame_t: torch.Tensor, frame_t1: torch.Tensor) -> torch.Tensor:
        try:
            self.raft.check_size(*frame_t.shape[-2:])
        except ValueError as exc:
            raise InputError(f"MAWE size: {exc}; the official size is {MAWE_SIZE}") from exc
        device = next(self.raft.parameters()).device
        image_t = _to_raft_input(frame_t, device)
        image_t1 = _to_raft_input(frame_t1, device)
        f_t = self._features(frame_t, image_t)
        f_t1 = self.raft.features(image_t1)
        self._cache = (frame_t1, f_t1)
        return self.raft.flow(image_t, f_t, f_t1)[0]
