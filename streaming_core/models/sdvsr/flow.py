"""Frame-to-previous-frame flow at HR resolution, whole-frame (official) or in overlapping tiles.

Why tiles: RAFT's all-pairs correlation volume has (H/8 * W/8)^2 entries, so memory grows with the
fourth power of the side: 0.8 GB at 720p HR, 4.2 GB at 1080p, 27.5 GB for a 2304^2 output (the OOM
of the official issue #7). With ``tile`` set, RAFT runs on overlapping square tiles and the tile
flows are blended with linear ramps across the overlaps; each tile costs (tile/8)^4 * 4 bytes * 4/3
(pyramid) instead. Without ``tile`` (or when the frame fits in one tile) the result is exactly the
official whole-frame flow.

What tiles cost in quality: a tile only sees its own pixels, so (1) a displacement whose match lies
outside the tile cannot be found (near tile borders motion larger than the overlap is lost; use an
overlap larger than the largest expected motion in HR pixels), (2) RAFT's feature encoder normalises
per tile (InstanceNorm statistics differ from whole-frame ones) and its context has less global
information, so flows differ slightly everywhere, most near seams, which the ramps hide but do not
remove. Errors in the flow only affect the warped previous frame that guides ARTG and the TPM, so
they show as slightly weaker temporal consistency, not as visible seams in the output.

Features of every tile of a frame are kept for the next pair (the tile grid is the same for every
frame of a video), so the feature encoder still runs once per frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch

from .raft import RAFT_DOWNSAMPLE, RaftFlow

DEFAULT_TILE_OVERLAP = 128  # HR pixels
CORR_BYTES_PER_ENTRY = 4 * 4 / 3  # float32, pyramid levels 1 + 1/4 + 1/16 + ...


@dataclass(frozen=True)
class Tile:
    y0: int
    y1: int
    x0: int
    x1: int

    def crop(self, t: torch.Tensor) -> torch.Tensor:
        return t[..., self.y0 : self.y1, self.x0 : self.x1]


def correlation_bytes(height: int, width: int) -> float:
    """Bytes of RAFT's correlation pyramid for one image pair of this size."""
    return (height // RAFT_DOWNSAMPLE * (width // RAFT_DOWNSAMPLE)) ** 2 * CORR_BYTES_PER_ENTRY


def auto_tile_size(height: int, width: int, budget_bytes: float, min_size: int = 128) -> Optional[int]:
    """None when the whole frame fits the budget, else the largest tile side that does."""
    if correlation_bytes(height, width) <= budget_bytes:
        return None
    side = int((budget_bytes / CORR_BYTES_PER_ENTRY) ** 0.25) * RAFT_DOWNSAMPLE
    return max(min_size, side)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    n = max(n, 2)
    starts = [int(round(i * (length - tile) / (n - 1))) // RAFT_DOWNSAMPLE * RAFT_DOWNSAMPLE for i in range(n)]
    starts[-1] = length - tile
    return sorted(set(starts))


def tile_grid(height: int, width: int, tile: int, overlap: int) -> list[Tile]:
    """Tiles of side ``tile`` (clipped to the frame) covering it with at least ``overlap`` px overlap."""
    th, tw = min(tile, height), min(tile, width)
    return [Tile(y, y + th, x, x + tw) for y in _starts(height, th, overlap) for x in _starts(width, tw, overlap)]


def _ramp(size: int, ramp: int, rising: bool, falling: bool) -> torch.Tensor:
    w = torch.ones(size)
    r = torch.arange(1, size + 1, dtype=torch.float32) / (ramp + 1)
    if rising:
        w = torch.minimum(w, r)
    if falling:
        w = torch.minimum(w, r.flip(0))
    return w


def tile_weight(tile: Tile, height: int, width: int, ramp: int) -> torch.Tensor:
    """(h, w) blend weight: linear ramps on sides shared with another tile, 1 on frame borders."""
    wy = _ramp(tile.y1 - tile.y0, ramp, tile.y0 > 0, tile.y1 < height)
    wx = _ramp(tile.x1 - tile.x0, ramp, tile.x0 > 0, tile.x1 < width)
    return wy[:, None] * wx[None, :]


class FlowEstimator:
    """RAFT flow between consecutive HR frames, whole-frame or tiled, reusing per-frame features."""

    def __init__(self, raft: RaftFlow, tile: Optional[int] = None, overlap: int = DEFAULT_TILE_OVERLAP):
        self.raft = raft
        m = raft.min_image_size
        if tile is not None:
            if tile < m:
                raise ValueError(f"flow tile {tile} is smaller than RAFT's minimum input of {m} px")
            tile = tile // RAFT_DOWNSAMPLE * RAFT_DOWNSAMPLE
            if overlap < 0:
                raise ValueError(f"flow tile overlap must be >= 0, got {overlap}")
            overlap = min(overlap, tile // 2)  # more than half a tile would only repeat work
        self.tile = tile
        self.overlap = overlap

    def tiles(self, height: int, width: int) -> list[Tile]:
        if self.tile is None or (height <= self.tile and width <= self.tile):
            return [Tile(0, height, 0, width)]
        return tile_grid(height, width, self.tile, self.overlap)

    def features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Per-tile RAFT features of one HR frame (B,3,H,W) in [-1, 1]."""
        return [self.raft.features(t.crop(image)) for t in self.tiles(*image.shape[-2:])]

    def flow(self, image: torch.Tensor, feats: list[torch.Tensor], prev_feats: list[torch.Tensor]) -> torch.Tensor:
        """Flow (B,H,W,2) from ``image`` to the previous frame (whose features are ``prev_feats``)."""
        h, w = image.shape[-2:]
        tiles = self.tiles(h, w)
        if len(tiles) == 1:
            return self.raft.flow(image, feats[0], prev_feats[0]).permute(0, 2, 3, 1)
        total = torch.zeros(image.shape[0], 2, h, w, device=image.device)
        weight = torch.zeros(h, w, device=image.device)
        for tile, f1, f2 in zip(tiles, feats, prev_feats):
            wt = tile_weight(tile, h, w, self.overlap).to(image.device)
            flow = self.raft.flow(tile.crop(image), f1, f2)
            total[..., tile.y0 : tile.y1, tile.x0 : tile.x1] += flow * wt
            weight[tile.y0 : tile.y1, tile.x0 : tile.x1] += wt
        return (total / weight).permute(0, 2, 3, 1)
