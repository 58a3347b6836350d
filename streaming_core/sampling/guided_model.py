"""A chunk model for the SDEdit sampler: classifier-free guidance (+ rescale) around a video network.

The official MS-Vid2Vid-XL code calls the UNet twice per chunk (conditional, then unconditional,
batch 1 each). Its UNet handles per-sample timesteps and contexts (the parity fixture's batch-2
case pins that), so here both halves go through one batch-2 forward: the same numbers (up to the
summation order of batched kernels) for one call's overhead. ``batch_cond_uncond=False`` restores two
calls, for memory-tight GPUs.

Networks with a latent-size rule (MS-Vid2Vid-XL needs H % 8 == 2 and W % 8 == 0) get the chunk
padded by edge replication to the nearest accepted size and the output cropped back, so any frame
size works.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..models.enhancer import Enhancer, SizeRule
from ..oom import retry_smaller
from .guidance import cfg, rescale_guidance

# (sample (B, C, F, H, W), timestep (B,) int64, context (B, tokens, D)) -> output like sample
VideoNetwork = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _pad_to(x: torch.Tensor, size: tuple[int, int]) -> tuple[torch.Tensor, tuple[int, int, int, int]]:
    h, w = x.shape[-2:]
    dh, dw = size[0] - h, size[1] - w
    if dh < 0 or dw < 0:
        raise ValueError(f"size rule returned {size}, smaller than the latent {(h, w)}")
    box = (dw // 2, dw - dw // 2, dh // 2, dh - dh // 2)  # left, right, top, bottom
    if dh == dw == 0:
        return x, box
    b, c, f = x.shape[:3]
    padded = F.pad(x.reshape(b, c * f, h, w).float(), box, mode="replicate").to(x.dtype)
    return padded.reshape(b, c, f, *padded.shape[-2:]), box


def _crop(x: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    left, right, top, bottom = box
    return x[..., top:x.shape[-2] - bottom, left:x.shape[-1] - right]


WINDOW_FITS = ("free GPU memory (other models; --offload outside ComfyUI; an fp8 weight dtype), or refine at a "
               "smaller size or with fewer frames per window")


SPLIT_WORDS = {"batched": "cond and uncond in one batch", "passes": "one guidance pass at a time",
               "single": "one video and one guidance pass at a time"}


def _passes(network: VideoNetwork, x, timestep, c, u, split: str):
    """(cond output, uncond output or None) of the network calls ``split`` names (see SPLIT_WORDS); the
    smaller splits are the out-of-memory fallback: the same computation in smaller batches."""
    if split == "batched" and u is not None:
        both = network(torch.cat([x, x]), torch.cat([timestep, timestep]), torch.cat([c, u]))
        return both[:x.shape[0]], both[x.shape[0]:]
    if split != "single":
        return network(x, timestep, c), None if u is None else network(x, timestep, u)

    def one_by_one(ctx):
        return torch.cat([network(x[i:i + 1], timestep[i:i + 1], ctx[i:i + 1]) for i in range(x.shape[0])])

    return one_by_one(c), None if u is None else one_by_one(u)


def guided_chunk_model(
    network: VideoNetwork,
    cond: torch.Tensor,
    uncond: Optional[torch.Tensor],
    guidance: float,
    rescale: float = 0.0,
    *,
    size_rule: Optional[SizeRule] = None,
    batch_cond_uncond: bool = True,
    dtype: Optional[torch.dtype] = None,
    on_call: Optional[Callable[[int, torch.Tensor, Optional[torch.Tensor]], None]] = None,
):
    """``(chunk (B, C, f, h, w), t) -> guided output`` in float32.

    ``cond``/``uncond``: (1 or B, tokens, D) contexts. ``guidance == 1`` or ``uncond is None`` runs
    the conditional pass only. ``dtype``: the network's compute dtype (inputs are cast to it).
    ``on_call(t, cond_out, uncond_out)`` observes the raw network outputs (parity recording).
    """
    use_uncond = uncond is not None and guidance != 1.0

    def model(chunk: torch.Tensor, t: int) -> torch.Tensor:
        b = chunk.shape[0]
        x = chunk if dtype is None else chunk.to(dtype)
        box = (0, 0, 0, 0)
        if size_rule is not None:
            x, box = _pad_to(x, size_rule(*x.shape[-2:]))
        c = cond.to(x.device, x.dtype).expand(b, -1, -1)
        timestep = torch.full((b,), int(t), dtype=torch.long, device=x.device)
        u = uncond.to(x.device, x.dtype).expand(b, -1, -1) if use_uncond else None
        first = "batched" if batch_cond_uncond else "passes"
        smaller = "passes" if first == "batched" and u is not None else ("single" if b > 1 else None)
        out_c, out_u = retry_smaller("the refine window's denoiser", lambda split: _passes(network, x, timestep, c, u, split),
                                     first, smaller, WINDOW_FITS, SPLIT_WORDS.get)
        out_c = _crop(out_c, box).float()
        out_u = None if out_u is None else _crop(out_u, box).float()
        if on_call is not None:
            on_call(int(t), out_c, out_u)
        if out_u is None:
            return out_c
        return rescale_guidance(cfg(out_u, out_c, guidance), out_c, rescale)

    return model


def enhancer_chunk_model(enhancer: Enhancer, cond: torch.Tensor, uncond: Optional[torch.Tensor], guidance: float,
                         guidance_rescale: Optional[float] = None):
    """``guided_chunk_model`` around an enhancer's UNet with its size rule, batching, dtype and (unless
    given) its guidance rescale."""
    unet = enhancer.unet
    return guided_chunk_model(
        lambda x, t, y: unet(x, t, y), cond.to(enhancer.device, enhancer.dtype),
        None if uncond is None else uncond.to(enhancer.device, enhancer.dtype), guidance,
        enhancer.guidance_rescale if guidance_rescale is None else guidance_rescale,
        size_rule=enhancer.size_rule, batch_cond_uncond=enhancer.batch_cond_uncond, dtype=enhancer.dtype)
