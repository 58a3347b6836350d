"""The SD-style KL autoencoder (diffusers ``AutoencoderKL``) with its config read from shapes, and
frame-sliced encode/decode so a long video never passes through the VAE at once.

Pixel conventions, named so they cannot be mixed up: the VAE and the CAM frames use **signed**
pixels in [-1, 1]; images handed to users (and ComfyUI) are **unit** pixels in [0, 1].
"""

from __future__ import annotations

from typing import Mapping, Optional

import torch
from ..oom import retry_smaller
from .operations import execution_device, execution_dtype

SCALING_FACTOR = 0.18215  # text-to-video-ms-1.7b (SD) latent scale
NORM_GROUPS = 32


def to_unit_range(signed: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> [0, 1], clamped (the official decode's ``x / 2 + 0.5`` then clamp)."""
    return (signed / 2 + 0.5).clamp(0, 1)


def to_signed_range(unit: torch.Tensor) -> torch.Tensor:
    """[0, 1] -> [-1, 1] (the official ``2x - 1``)."""
    return unit * 2 - 1


def vae_config_from_state_dict(sd: Mapping[str, torch.Tensor], prefix: str = "") -> dict:
    """``AutoencoderKL`` constructor arguments from the shapes under ``prefix`` (e.g. ``vae.``)."""
    channels = []
    while prefix + f"encoder.down_blocks.{len(channels)}.resnets.0.conv1.weight" in sd:
        channels.append(sd[prefix + f"encoder.down_blocks.{len(channels)}.resnets.0.conv1.weight"].shape[0])
    if not channels:
        raise KeyError(prefix + "encoder.down_blocks.0.resnets.0.conv1.weight")
    layers = 0
    while prefix + f"encoder.down_blocks.0.resnets.{layers}.conv1.weight" in sd:
        layers += 1
    return dict(
        in_channels=sd[prefix + "encoder.conv_in.weight"].shape[1],
        out_channels=sd[prefix + "decoder.conv_out.weight"].shape[0],
        down_block_types=["DownEncoderBlock2D"] * len(channels),
        up_block_types=["UpDecoderBlock2D"] * len(channels),
        block_out_channels=channels,
        layers_per_block=layers,
        latent_channels=sd[prefix + "decoder.conv_in.weight"].shape[1],
        norm_num_groups=NORM_GROUPS,
        use_quant_conv=prefix + "quant_conv.weight" in sd,
        use_post_quant_conv=prefix + "post_quant_conv.weight" in sd,
        mid_block_add_attention=prefix + "encoder.mid_block.attentions.0.to_q.weight" in sd,
        scaling_factor=SCALING_FACTOR,
    )


def build_vae(config: dict):
    from diffusers import AutoencoderKL

    return AutoencoderKL(**config)


def _vae_dtype(vae) -> torch.dtype:
    return execution_dtype(vae)


VAE_FITS = ("free GPU memory (other models, other programs; --offload outside ComfyUI), lower the frame size, "
            "or use a VAE tile size (the enhancer's tile_px)")


def frames_per_slice(size: int) -> str:
    return f"{size} frame{'s' if size > 1 else ''} per VAE slice"


def decode_latents(vae, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
    """(N, C, h, w) scaled latents -> (N, 3, H, W) signed pixels (float32), ``slice_size`` at a time;
    out of memory: retried once one frame at a time."""
    return retry_smaller("VAE decode", lambda size: _decode_latents(vae, latents, size), slice_size,
                         1 if slice_size > 1 else None, VAE_FITS, frames_per_slice)


def _decode_latents(vae, latents: torch.Tensor, slice_size: int) -> torch.Tensor:
    scale = vae.config.scaling_factor
    device, dtype = execution_device(vae), _vae_dtype(vae)
    out = []
    for part in latents.split(max(1, slice_size)):
        pixels = vae.decode(part.to(device, dtype) / scale).sample
        out.append(pixels.float())
    return torch.cat(out)


def encode_pixels(vae, pixels: torch.Tensor, slice_size: int = 8, generator: Optional[torch.Generator] = None,
                  sample_posterior: bool = False) -> torch.Tensor:
    """(N, 3, H, W) signed pixels -> (N, C, h, w) scaled latents (float32): the posterior mean, or a
    sample from it when ``sample_posterior`` (drawn from ``generator``); out of memory: retried once one
    frame at a time, from the same generator state (the same latents)."""
    state = generator.get_state() if generator is not None else None

    def attempt(size: int) -> torch.Tensor:
        if state is not None:
            generator.set_state(state)
        return _encode_pixels(vae, pixels, size, generator, sample_posterior)

    return retry_smaller("VAE encode", attempt, slice_size, 1 if slice_size > 1 else None, VAE_FITS, frames_per_slice)


def _encode_pixels(vae, pixels: torch.Tensor, slice_size: int, generator: Optional[torch.Generator],
                   sample_posterior: bool) -> torch.Tensor:
    scale = vae.config.scaling_factor
    device, dtype = execution_device(vae), _vae_dtype(vae)
    out = []
    for part in pixels.split(max(1, slice_size)):
        dist = vae.encode(part.to(device, dtype)).latent_dist
        z = dist.sample(generator) if sample_posterior else dist.mode()
        out.append(z.float() * scale)
    return torch.cat(out)


def decode_video(vae, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
    """(B, C, F, h, w) scaled latents -> (B, F, 3, H, W) signed pixels."""
    b, c, f, h, w = latents.shape
    frames = decode_latents(vae, latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w), slice_size)
    return frames.reshape(b, f, *frames.shape[1:])


def encode_video(vae, pixels: torch.Tensor, slice_size: int = 8, generator: Optional[torch.Generator] = None,
                 sample_posterior: bool = False) -> torch.Tensor:
    """(B, F, 3, H, W) signed pixels -> (B, C, F, h, w) scaled latents."""
    b, f = pixels.shape[:2]
    z = encode_pixels(vae, pixels.reshape(b * f, *pixels.shape[2:]), slice_size, generator, sample_posterior)
    return z.reshape(b, f, *z.shape[1:]).permute(0, 2, 1, 3, 4)
