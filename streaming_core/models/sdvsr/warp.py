"""Backward warping of the previous HR output onto the current frame, exactly as the official code.

The official ``flow_warp`` (inherited from StableVSR/BasicSR) normalises pixel coordinates with
(W - 1) / (H - 1) but samples with ``grid_sample(align_corners=False)``. The two conventions do not
match, so even a zero flow is not the identity: the sampled position is x * W / (W - 1) - 0.5 (a
slight magnification about the centre) and the outermost rows/columns are blended 50 % with the
zero padding, which is mid-grey in [-1, 1]. The ControlNet (ARTG) and the decoder's TPM were trained
on images warped this way, so it is reproduced on purpose (spec §2.6).

Always float32: the grid holds absolute pixel coordinates, and float16 cannot address single pixels
beyond 2048.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def flow_to_nhwc(flow: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Accept a flow as (N, H, W, 2) or (N, 2, H, W) and return (N, H, W, 2)."""
    if flow.ndim != 4:
        raise ValueError(f"flow must be 4-D (N,H,W,2) or (N,2,H,W), got {tuple(flow.shape)}")
    if tuple(flow.shape[1:]) == (height, width, 2):
        return flow
    if tuple(flow.shape[1:]) == (2, height, width):
        return flow.permute(0, 2, 3, 1)
    raise ValueError(f"flow {tuple(flow.shape)} does not match an image of {height}x{width}")


def flow_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Sample ``image`` (N,C,H,W) at p + flow(p) for every pixel p; flow (dx, dy) in pixels.

    Bilinear, zero padding, official normalisation (see the module docstring). Returns float32.
    """
    n, _, h, w = image.shape
    flow = flow_to_nhwc(flow, h, w).float()
    ys, xs = torch.meshgrid(
        torch.arange(h, device=flow.device, dtype=torch.float32),
        torch.arange(w, device=flow.device, dtype=torch.float32),
        indexing="ij",
    )
    grid = torch.stack((xs, ys), dim=2) + flow  # (N, H, W, 2) absolute positions
    gx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    return F.grid_sample(image.float(), torch.stack((gx, gy), dim=3), mode="bilinear", padding_mode="zeros",
                         align_corners=False)
