"""An enhancer: what the refiner needs from a short-video model, in one small object (a model
bundle, like ``models/sdvsr/bundle.py`` for the upscaler).

The refiner is model-agnostic: it needs a denoiser to call per chunk, the noise table the denoiser
was trained with, text encoding, the VAE, and the model's resolution rules. ``checkpoints/enhancer.py``
builds one from MS-Vid2Vid-XL's three files or from a diffusers UNet3D folder (zeroscope_v2_XL);
``sampling.guided_model.enhancer_chunk_model`` wraps its UNet with guidance for the sampler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..schedules.vp_sigmas import VPSigmaTable
from .operations import execution_device, execution_dtype
from .vae_tiling import DEFAULT_OVERLAP_PX, DEFAULT_TILE_PX, decode_frames, downscale_factor, encode_frames

# latent (h, w) -> the nearest latent size the network accepts
SizeRule = Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class NativeResolution:
    """Frames are scaled to fit inside width x height (aspect kept) and, with ``pad``, centred on a
    black canvas of exactly that size, as the model was trained (MS-Vid2Vid-XL: 1280x720, so a
    square 256 px video becomes 720x720 on 1280x720). The padding is removed from the output."""

    width: int
    height: int
    pad: bool = True


@dataclass(frozen=True)
class FramePlan:
    fitted: tuple[int, int]  # (H, W) of the scaled frames: the output size
    canvas: tuple[int, int]  # (H, W) the VAE sees
    offset: tuple[int, int]  # (top, left) of the frames on the canvas


def plan_frames(height: int, width: int, resolution: NativeResolution, multiple: int) -> FramePlan:
    scale = min(resolution.width / width, resolution.height / height)
    fh, fw = max(1, round(height * scale)), max(1, round(width * scale))

    def up(v: int) -> int:
        return -(-v // multiple) * multiple

    ch, cw = (up(resolution.height), up(resolution.width)) if resolution.pad else (up(fh), up(fw))
    return FramePlan((fh, fw), (ch, cw), ((ch - fh) // 2, (cw - fw) // 2))


def place_frames(frames: torch.Tensor, plan: FramePlan) -> torch.Tensor:
    """(F, H, W, 3) 0..1 -> (F, 3, canvas H, canvas W) signed pixels, black (-1) around the frames."""
    x = frames.permute(0, 3, 1, 2).float()
    if tuple(x.shape[-2:]) != plan.fitted:
        x = F.interpolate(x, size=plan.fitted, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    canvas = x.new_zeros(x.shape[0], 3, *plan.canvas)
    top, left = plan.offset
    canvas[:, :, top:top + plan.fitted[0], left:left + plan.fitted[1]] = x
    return canvas * 2 - 1


def crop_frames(pixels: torch.Tensor, plan: FramePlan) -> torch.Tensor:
    """(F, 3, canvas) signed -> (F, H, W, 3) 0..1 with the padding removed."""
    top, left = plan.offset
    x = pixels[:, :, top:top + plan.fitted[0], left:left + plan.fitted[1]]
    return (x / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1)


@dataclass
class Enhancer:
    kind: str  # "ms_vid2vid_xl" or "diffusers_unet3d"
    unet: nn.Module  # forward(sample (B, C, F, h, w), timestep (B,), context (B, tokens, D))
    text_encoder: nn.Module  # .encode(prompts) -> (B, 77, D)
    vae: nn.Module  # diffusers AutoencoderKL
    table: VPSigmaTable
    prediction_type: str  # schedules.prediction.PREDICTION_TYPES: "epsilon", "v" or "sample"
    resolution: NativeResolution
    size_rule: Optional[SizeRule] = None  # latent (h, w) -> the nearest size the UNet accepts
    init: str = "exact"  # sdedit_windows' init scaling ("modelscope" keeps MS-Vid2Vid-XL's quirk)
    guidance_rescale: float = 0.0
    prompt_suffix: str = ""  # MS-Vid2Vid-XL's caption is "<prompt>, "
    sample_posterior: bool = True  # encode with a posterior sample (official) or its mean
    vae_slice: int = 4  # frames per VAE call (a 1280x720 SD-VAE decode holds GBs of activations per frame)
    tile_px: Optional[int] = DEFAULT_TILE_PX  # VAE tiles when a frame side exceeds this (None: never)
    tile_overlap_px: int = DEFAULT_OVERLAP_PX
    batch_cond_uncond: bool = True
    source: str = ""

    # -- placement --------------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return execution_device(self.unet)

    @property
    def dtype(self) -> torch.dtype:
        return execution_dtype(self.unet)

    def to(self, device=None, dtype: Optional[torch.dtype] = None, vae_dtype: Optional[torch.dtype] = None,
           text_dtype: Optional[torch.dtype] = None) -> "Enhancer":
        for module, target in ((self.unet, dtype), (self.text_encoder, text_dtype or dtype), (self.vae, vae_dtype or dtype)):
            current = next(module.parameters()).dtype
            module.to(device=device) if target in (None, current) else module.to(device=device, dtype=target)
        return self

    @property
    def vae_factor(self) -> int:
        return downscale_factor(self.vae)

    # -- the pieces the refiner calls ------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompt: str, negative_prompt: str = "") -> tuple[torch.Tensor, torch.Tensor]:
        contexts = self.text_encoder.encode([prompt + self.prompt_suffix, negative_prompt])
        return contexts[:1], contexts[1:]

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(F, 3, H, W) signed pixels -> (1, C, F, h, w) scaled latents (float32, on the device)."""
        z = encode_frames(self.vae, pixels, slice_size=self.vae_slice, tile_px=self.tile_px,
                          overlap_px=self.tile_overlap_px, generator=generator,
                          sample_posterior=self.sample_posterior)
        return z.permute(1, 0, 2, 3).unsqueeze(0)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(1, C, F, h, w) -> (F, 3, H, W) signed pixels, float32 on the CPU."""
        z = latents[0].permute(1, 0, 2, 3)
        frames = [decode_frames(self.vae, part, slice_size=self.vae_slice, tile_px=self.tile_px,
                                overlap_px=self.tile_overlap_px).cpu()
                  for part in z.split(max(1, self.vae_slice))]
        return torch.cat(frames)

    def describe(self) -> str:
        return (f"{self.kind} ({self.source}): {self.prediction_type}-prediction, native "
                f"{self.resolution.width}x{self.resolution.height}{' padded' if self.resolution.pad else ''}")

