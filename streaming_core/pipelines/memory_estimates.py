"""Memory estimates: the activation bytes of one step of each stage, beside the weights.

Why: ComfyUI frees ``memory_required`` bytes (``load_models_gpu``) before a node computes, and only
reserves a fixed small amount otherwise, so a 720p refiner window or RAFT at HR size would run out of
memory after the weights were placed. The nodes pass these estimates; the CLI and the benchmark
print them. Each is a documented formula of frames, size, batch and dtype, plus the network's widths
(read from its config, so a tiny model gets a tiny estimate).

The formulas (``s`` = bytes per element of the compute dtype; ``T_i`` = batch x frames x latent
pixels at UNet level ``i`` = ``T_0 / 4^i``; ``c_i`` = that level's channels; ``L`` = layers per block):

* UNet forward (``unet_bytes``): the skip tensors the down path keeps for the up path,
  ``sum_i (L + 1) c_i T_i``, plus the working set of the widest block at level 0,
  ``UNET_WORK x c_0 T_0`` (a transformer block: the input, norm, q/k/v/out, the GEGLU
  feed-forward's 8c projection, its two 4c halves and their product, about 20 c_0 T_0, rounded up to
  the 32 measured on the tiny ModelScope and enhancer UNets on the CPU; attention runs through
  ``scaled_dot_product_attention``, whose memory-efficient kernels keep no tokens^2 score matrix),
  plus the cross-attention context ``2 x batch x 77 x d_ctx`` (keys and values).
* VAE decode of a slice (``vae_decode_bytes``): ``VAE_WORK x c_top x slice x H x W``, the decoder's
  widest tensors at the output size (ResNet in/out, norm, upsample).
* RAFT (``flow_bytes``): the correlation pyramid of the frame pair (``correlation_bytes``, fp32),
  plus ``RAFT_WORK x (H/8)(W/8)`` fp32 features per frame, for each tile run at once (one).
* Image encoder (``vit_bytes``): ``VIT_WORK x width x tokens x frames`` (the MLP's 4x hidden and
  the residual stream), tokens = (image/patch)^2 + 1; the anchor adds ``PREPROCESS_COPIES`` fp32
  copies of the frames at the ViT's input size.
* An extension chunk keeps the CAM's skip features while the UNet runs: CAM skips + max(CAM work,
  UNet) + the CAM frames + 4 fp32 latent-sized tensors of the sampler.

Stage estimates add the inputs and outputs that live beside: the latents and noise of the chunk,
the CAM's kept features, the HR frame buffers. They are upper-bound-ish: the tests hold them within
2x of the peak measured on the CPU for the tiny models (tests/test_vram_estimates.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..models.sdvsr.flow import RAFT_DOWNSAMPLE, correlation_bytes

UNET_WORK = 32   # c_0 x T_0 multiples alive in the widest level-0 block (see the module docstring)
VAE_WORK = 6     # c_top x pixels multiples alive in the VAE decoder's last level
RAFT_WORK = 640  # fp32 values per 1/8-resolution pixel: features (256) + context (256) + update state
VIT_WORK = 8     # width x tokens multiples alive in one ViT block (MLP 4x, residual, attention)
PREPROCESS_COPIES = 3  # resize, normalise, the ViT's input cast
CONTEXT_TOKENS = 77
LATENT_FACTOR = 8


@dataclass(frozen=True)
class UNetShape:
    """The widths an activation estimate needs: channels per level, layers per block, context width."""
    channels: tuple[int, ...]
    layers_per_block: int
    context_dim: int = 1024

    @classmethod
    def of(cls, unet) -> "UNetShape":
        """From our UNet3D family or a diffusers UNet / ControlNet (their configs share these names)."""
        config = unet.config
        get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
        layers = get("layers_per_block")
        layers = layers if isinstance(layers, int) else max(layers)
        context = get("cross_attention_dim") or 1024
        context = context if isinstance(context, int) else max(context)
        return cls(tuple(get("block_out_channels")), layers, context)


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def unet_skip_bytes(shape: UNetShape, *, batch: int, frames: int, height: int, width: int,
                    dtype: torch.dtype) -> int:
    """The down path's outputs, kept for the up path (or, for a CAM/ControlNet, handed to the UNet)."""
    t0 = batch * frames * height * width
    return int(dtype_bytes(dtype) * sum((shape.layers_per_block + 1) * c * t0 / 4 ** i
                                        for i, c in enumerate(shape.channels)))


def unet_work_bytes(shape: UNetShape, *, batch: int, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """The widest block's working set at level 0, plus the cross-attention keys and values."""
    t0 = batch * frames * height * width
    return int(dtype_bytes(dtype) * (UNET_WORK * shape.channels[0] * t0 + 2 * batch * CONTEXT_TOKENS * shape.context_dim))


def unet_bytes(shape: UNetShape, *, batch: int, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """One UNet forward at latent size ``height`` x ``width`` (see the module docstring)."""
    size = dict(batch=batch, frames=frames, height=height, width=width, dtype=dtype)
    return unet_skip_bytes(shape, **size) + unet_work_bytes(shape, **size)


def vae_decode_bytes(top_channels: int, *, frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Decoding ``frames`` frames at once to ``height`` x ``width`` pixels."""
    return int(dtype_bytes(dtype) * VAE_WORK * top_channels * frames * height * width)


def flow_bytes(height: int, width: int, tile: Optional[int] = None) -> int:
    """RAFT between two HR frames of ``height`` x ``width`` (one ``tile`` x ``tile`` tile at a time)."""
    h, w = (height, width) if tile is None else (min(tile, height), min(tile, width))
    cells = (h // RAFT_DOWNSAMPLE) * (w // RAFT_DOWNSAMPLE)
    return int(correlation_bytes(h, w) + 4 * RAFT_WORK * cells * 2)


def vit_bytes(width: int, *, frames: int, image_size: int, patch_size: int, dtype: torch.dtype) -> int:
    tokens = (image_size // patch_size) ** 2 + 1
    return int(dtype_bytes(dtype) * VIT_WORK * width * tokens * frames)


# -- the stages -------------------------------------------------------------------------------------

def extension_chunk_bytes(unet: UNetShape, cam: UNetShape, *, frames: int = 16, cam_frames: int = 8, height: int,
                          width: int, batch: int = 1, passes: int = 3, dtype: torch.dtype) -> int:
    """One denoising step of a StreamingT2V extension chunk: ``passes`` guidance passes (eq. 12: 3) of
    ``batch`` videos through the CAM (its kept features) and the UNet, at ``height`` x ``width`` pixels."""
    h, w = height // LATENT_FACTOR, width // LATENT_FACTOR
    rows = batch * passes
    cam_size = dict(batch=rows, frames=cam_frames, height=h, width=w, dtype=dtype)
    cam_features = unet_skip_bytes(cam, **cam_size)  # kept while the UNet runs
    compute = max(unet_work_bytes(cam, **cam_size), unet_bytes(unet, batch=rows, frames=frames, height=h, width=w,
                                                                 dtype=dtype))
    cam_pixels = rows * cam_frames * 3 * height * width * dtype_bytes(dtype)
    latents = 4 * rows * 4 * frames * h * w * 4  # x, eps, the sampler's state (fp32)
    return cam_features + compute + cam_pixels + latents


def initial_chunk_bytes(unet: UNetShape, *, frames: int = 16, height: int, width: int, batch: int = 1,
                        passes: int = 2, dtype: torch.dtype, vae_channels: int = 128, vae_slice: int = 8) -> int:
    """One step of the first chunk (ModelScope UNet, cond and uncond batched), or its VAE decode."""
    h, w = height // LATENT_FACTOR, width // LATENT_FACTOR
    step = unet_bytes(unet, batch=batch * passes, frames=frames, height=h, width=w, dtype=dtype)
    decode = vae_decode_bytes(vae_channels, frames=min(vae_slice, frames), height=height, width=width, dtype=dtype)
    return max(step, decode) + 4 * batch * passes * 4 * frames * h * w * 4


def refine_window_bytes(unet: UNetShape, *, frames: int, height: int, width: int, batch: int = 1, passes: int = 2,
                        dtype: torch.dtype, vae_factor: int = 8, vae_channels: int = 128, vae_slice: int = 8) -> int:
    """One denoiser call of a refine window (cond and uncond batched) at ``height`` x ``width`` pixels, or a
    VAE slice of it, whichever is larger."""
    h, w = height // vae_factor, width // vae_factor
    step = unet_bytes(unet, batch=batch * passes, frames=frames, height=h, width=w, dtype=dtype)
    decode = vae_decode_bytes(vae_channels, frames=min(vae_slice, frames), height=height, width=width, dtype=dtype)
    return max(step, decode) + 4 * batch * passes * 4 * frames * h * w * 4


def upscale_frame_bytes(unet: UNetShape, *, height: int, width: int, dtype: torch.dtype, scale: int = 4,
                        flow_tile: Optional[int] = None, vae_channels: int = 64) -> int:
    """One Stream-DiffVSR frame: RAFT at the HR size (``scale`` x the ``height`` x ``width`` input) or the
    UNet + ControlNet step at the input size, plus the HR frame buffers (fp32)."""
    hr_h, hr_w = height * scale, width * scale
    flow = flow_bytes(hr_h, hr_w, flow_tile)
    step = 2 * unet_bytes(unet, batch=1, frames=1, height=height, width=width, dtype=dtype)  # UNet + ControlNet
    decode = vae_decode_bytes(vae_channels, frames=1, height=hr_h, width=hr_w, dtype=torch.float32)
    buffers = 6 * 3 * hr_h * hr_w * 4  # bicubic x4 of this and the previous frame, warped, previous HR, output
    return max(flow, step, decode) + buffers


def anchor_encode_bytes(width: int, *, frames: int = 1, image_size: int = 224, patch_size: int = 14,
                        dtype: torch.dtype, pixels: Optional[Sequence[int]] = None) -> int:
    """The APM anchor: ``frames`` frames resized and normalised to the ViT's input (``PREPROCESS_COPIES``
    fp32 copies), then through the OpenCLIP ViT (plus the input frames at ``pixels`` size)."""
    inputs = 0 if pixels is None else frames * 3 * pixels[0] * pixels[1] * 4
    resized = PREPROCESS_COPIES * frames * 3 * image_size * image_size * 4
    return vit_bytes(width, frames=frames, image_size=image_size, patch_size=patch_size, dtype=dtype) + inputs \
        + resized


# -- the same, read off the models (what the nodes and the CLI pass) ----------------------------------

def _vae_top_channels(vae) -> int:
    config = vae.config
    get = config.get if isinstance(config, dict) else lambda k, d=None: getattr(config, k, d)
    channels = get("block_out_channels") or get("decoder_block_out_channels") or (128,)
    return max(channels)


def extension_chunk_for(st2v, *, height: int, width: int, batch: int = 1, passes: int = 3) -> int:
    """``extension_chunk_bytes`` for a StreamingT2V model (eq. 12 guidance: 3 passes)."""
    return extension_chunk_bytes(UNetShape.of(st2v.unet), UNetShape.of(st2v.cam.trunk), height=height, width=width,
                                 batch=batch, passes=passes, dtype=st2v.dtype)


def initial_chunk_for(unet, st2v, *, frames: int, height: int, width: int, batch: int = 1) -> int:
    """``initial_chunk_bytes`` for the ModelScope UNet (decoding with the StreamingT2V VAE)."""
    vae = getattr(st2v, "vae", None)
    return initial_chunk_bytes(UNetShape.of(unet), frames=frames, height=height, width=width, batch=batch,
                               dtype=unet.dtype, vae_channels=_vae_top_channels(vae) if vae is not None else 128)


def anchor_encode_for(st2v, *, frames: int = 1, pixels: Optional[Sequence[int]] = None) -> int:
    config = st2v.image_encoder.config if st2v.image_encoder is not None else None
    if config is None:
        return 0
    return anchor_encode_bytes(config.width, frames=frames, image_size=config.image_size,
                               patch_size=config.patch_size, dtype=st2v.dtype, pixels=pixels)


def refine_window_for(enhancer, *, frames: int, height: int, width: int, batch: int = 1) -> int:
    """``refine_window_bytes`` for an ``Enhancer`` at its working canvas ``height`` x ``width`` pixels."""
    passes = 2 if enhancer.batch_cond_uncond else 1
    return refine_window_bytes(UNetShape.of(enhancer.unet), frames=frames, height=height, width=width, batch=batch,
                               passes=passes, dtype=enhancer.dtype, vae_factor=enhancer.vae_factor,
                               vae_channels=_vae_top_channels(enhancer.vae), vae_slice=enhancer.vae_slice)


def upscale_frame_for(models, *, height: int, width: int, flow_tile: Optional[int] = None) -> int:
    """``upscale_frame_bytes`` for Stream-DiffVSR on ``height`` x ``width`` input frames."""
    return upscale_frame_bytes(UNetShape.of(models.unet), height=height, width=width, dtype=models.dtype,
                               scale=models.scale, flow_tile=flow_tile, vae_channels=_vae_top_channels(models.vae))
