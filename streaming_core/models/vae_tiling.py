"""Spatial tiling for the KL autoencoder at 720p and above, on top of the frame slicing of ``vae.py``.

A 1280x720 frame through the SD VAE decoder holds several 128-channel full-resolution activations,
too much for small GPUs when done for a batch of frames. Here a frame is covered by equal-size
overlapping tiles (evenly spaced, so no thin leftover tile at the border), each tile goes through the
network alone, and the results are cross-faded: every tile's output is weighted by a linear ramp over
``overlap`` at its inner edges and the sum is normalised by the summed weights, so each pixel is a
convex mix of the tiles that cover it and no seam line appears. Encoding blends the posterior
moments the same way. Tiled and untiled results differ slightly (GroupNorm statistics become per
tile, the receptive field is cut); the tests bound the difference on a tiny VAE.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ..oom import retry_smaller
from .vae import frames_per_slice, decode_latents, encode_pixels
from .operations import execution_device, execution_dtype

# A 1280x720 canvas becomes two 768x720 tiles sharing 256 columns: about half the activation memory,
# with tiles large enough that their GroupNorm statistics stay close to the whole frame's.
DEFAULT_TILE_PX = 768
DEFAULT_OVERLAP_PX = 256


def downscale_factor(vae) -> int:
    return 2 ** (len(vae.config.block_out_channels) - 1)


def tile_starts(size: int, tile: int, overlap: int, align: int = 1) -> list[int]:
    """Starts of equal tiles covering [0, size), evenly spaced with at least ``overlap`` shared, on
    multiples of ``align`` (a downscaling network needs tiles on its output grid)."""
    if size <= tile:
        return [0]
    count = math.ceil((size - overlap) / (tile - overlap - (align - 1)))
    step = (size - tile) / (count - 1)
    starts = [round(i * step / align) * align for i in range(count - 1)]
    return starts + [size - tile]


def _ramp(length: int, fade: int, fade_start: bool, fade_end: bool, device) -> torch.Tensor:
    w = torch.ones(length, device=device)
    fade = min(fade, length)
    if fade > 0:
        up = (torch.arange(fade, device=device) + 0.5) / fade
        if fade_start:
            w[:fade] = torch.minimum(w[:fade], up)
        if fade_end:
            w[length - fade:] = torch.minimum(w[length - fade:], up.flip(0))
    return w


def tiled_map(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, tile: int, overlap: int,
              scale_num: int = 1, scale_den: int = 1) -> torch.Tensor:
    """Apply a spatial network ``fn`` (N, C, h, w) -> (N, C', h*s, w*s), s = scale_num/scale_den, tile
    by tile over ``x`` (tile and overlap in input pixels) and cross-fade the outputs."""
    n, _, h, w = x.shape
    if h % scale_den or w % scale_den or tile % scale_den:
        raise ValueError(f"sizes must be multiples of the downscale factor {scale_den}")
    ys, xs = tile_starts(h, tile, overlap, scale_den), tile_starts(w, tile, overlap, scale_den)
    th, tw = min(tile, h), min(tile, w)

    def out_len(v: int) -> int:
        return v * scale_num // scale_den

    out = weight = None
    fade = out_len(overlap)
    for y0 in ys:
        for x0 in xs:
            part = fn(x[:, :, y0:y0 + th, x0:x0 + tw]).float()
            if out is None:
                out = part.new_zeros(n, part.shape[1], out_len(h), out_len(w))
                weight = part.new_zeros(1, 1, out_len(h), out_len(w))
            wy = _ramp(part.shape[2], fade, y0 > 0, y0 + th < h, part.device)
            wx = _ramp(part.shape[3], fade, x0 > 0, x0 + tw < w, part.device)
            mask = (wy[:, None] * wx[None, :])[None, None]
            oy, ox = out_len(y0), out_len(x0)
            out[:, :, oy:oy + part.shape[2], ox:ox + part.shape[3]] += part * mask
            weight[:, :, oy:oy + part.shape[2], ox:ox + part.shape[3]] += mask
    return out / weight


TILED_FITS = "free GPU memory (other models, other programs; --offload outside ComfyUI) or use a smaller VAE tile size"


def _check_tile(vae, tile_px: int, overlap_px: int) -> int:
    factor = downscale_factor(vae)
    if tile_px % factor or overlap_px % factor or not 0 <= overlap_px < tile_px:
        raise ValueError(f"tile {tile_px} px / overlap {overlap_px} px must be multiples of the VAE factor {factor} "
                         f"with overlap < tile")
    return factor


def encode_frames(vae, pixels: torch.Tensor, *, slice_size: int = 8, tile_px: Optional[int] = DEFAULT_TILE_PX,
                  overlap_px: int = DEFAULT_OVERLAP_PX, generator: Optional[torch.Generator] = None,
                  sample_posterior: bool = False) -> torch.Tensor:
    """(N, 3, H, W) signed pixels -> (N, C, H/f, W/f) scaled latents (float32, on the VAE's device),
    ``slice_size`` frames at a time, in tiles when a side exceeds ``tile_px``."""
    h, w = pixels.shape[-2:]
    if tile_px is None or max(h, w) <= tile_px:
        return encode_pixels(vae, pixels, slice_size, generator, sample_posterior)
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

    factor = _check_tile(vae, tile_px, overlap_px)
    device, dtype = execution_device(vae), execution_dtype(vae)

    def moments(tile: torch.Tensor) -> torch.Tensor:
        enc = vae.encoder(tile)
        return vae.quant_conv(enc) if vae.quant_conv is not None else enc

    state = generator.get_state() if generator is not None else None

    def attempt(size: int) -> torch.Tensor:
        if state is not None:
            generator.set_state(state)
        out = []
        for part in pixels.split(max(1, size)):
            m = tiled_map(moments, part.to(device, dtype), tile_px, overlap_px, 1, factor)
            dist = DiagonalGaussianDistribution(m)
            z = dist.sample(generator) if sample_posterior else dist.mode()
            out.append(z.float() * vae.config.scaling_factor)
        return torch.cat(out)

    return retry_smaller("tiled VAE encode", attempt, slice_size, 1 if slice_size > 1 else None, TILED_FITS,
                         frames_per_slice)


def decode_frames(vae, latents: torch.Tensor, *, slice_size: int = 8, tile_px: Optional[int] = DEFAULT_TILE_PX,
                  overlap_px: int = DEFAULT_OVERLAP_PX) -> torch.Tensor:
    """(N, C, h, w) scaled latents -> (N, 3, h*f, w*f) signed pixels (float32), sliced and tiled."""
    factor = downscale_factor(vae)
    if tile_px is None or max(latents.shape[-2:]) * factor <= tile_px:
        return decode_latents(vae, latents, slice_size)
    _check_tile(vae, tile_px, overlap_px)
    device, dtype = execution_device(vae), execution_dtype(vae)

    def decode(tile: torch.Tensor) -> torch.Tensor:
        if vae.post_quant_conv is not None:
            tile = vae.post_quant_conv(tile)
        return vae.decoder(tile)

    def attempt(size: int) -> torch.Tensor:
        out = []
        for part in latents.split(max(1, size)):
            z = part.to(device, dtype) / vae.config.scaling_factor
            out.append(tiled_map(decode, z, tile_px // factor, overlap_px // factor, factor, 1))
        return torch.cat(out)

    return retry_smaller("tiled VAE decode", attempt, slice_size, 1 if slice_size > 1 else None, TILED_FITS,
                         frames_per_slice)
