"""Benchmarks of the generation stages: the initial chunk and one CAM extension chunk.

Tiny models on any device, or the full-size networks with random weights (``full=True``): built
from the real architecture numbers (spec §1.2-§1.3, §2, §3, §5) directly on the device, no weights
file involved. This is the only place those numbers are written down; loading never uses them (the
loaders read every number from tensor shapes).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..benchmark import BenchResult, measure_steps, peak_memory
from ..models.apm import ResamplerConfig
from ..models.clip_image import VisionTowerConfig
from ..models.streamingt2v import StreamingT2V, StreamingT2VConfig
from ..models.unet3d import UNet3D, UNet3DConfig
from ..models.vae import SCALING_FACTOR
from ..official import EXTENSION, INITIAL_CHUNK
from ..tiny.modelscope import build_tiny_modelscope_unet
from ..tiny.st2v import build_tiny_streamingt2v
from .initial_chunk import InitialChunkSettings, generate_initial_chunk
from .long_video import ExtensionSettings, extend_video

FULL_SIZE = 256
TINY_SIZE = 64


def full_size_modelscope_config():
    """text-to-video-ms-1.7b's UNet (the diffusers UNet3D defaults; spec §1.2)."""
    return UNet3DConfig()


def full_size_streamingt2v_config():
    """Every part of streaming_t2v.ckpt at its real size (spec §1, §5)."""
    from transformers import CLIPTextConfig  # heavy optional library: only the full-size text encoder needs it

    text = CLIPTextConfig(vocab_size=49408, hidden_size=1024, intermediate_size=4096, num_hidden_layers=23,
                          num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
                          projection_dim=512, bos_token_id=0, eos_token_id=2, pad_token_id=1,
                          attn_implementation="sdpa")
    vae = dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
               up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[128, 256, 512, 512], layers_per_block=2,
               latent_channels=4, norm_num_groups=32, use_quant_conv=True, use_post_quant_conv=True,
               mid_block_add_attention=True, scaling_factor=SCALING_FACTOR)
    return StreamingT2VConfig(
        unet=UNet3DConfig(apm=True, cam_mergers=True),
        cam_unet=UNet3DConfig(),
        cam_frame_channels=(32, 96, 256, 512),
        resampler=ResamplerConfig(),
        image_encoder=VisionTowerConfig(),
        text_encoder=text,
        vae=vae,
    )


def build_models(full: bool, device: torch.device, dtype: torch.dtype, need_base: bool = True):
    """(StreamingT2V, ModelScope UNet or None) with random weights, on ``device`` in ``dtype``."""
    if full:
        with torch.device(device):
            model = StreamingT2V(full_size_streamingt2v_config())
            base = UNet3D(full_size_modelscope_config()) if need_base else None
    else:
        model = build_tiny_streamingt2v(seed=0)
        base = build_tiny_modelscope_unet(seed=0) if need_base else None
    model = model.to(device, dtype).eval().requires_grad_(False)
    if base is not None:
        base = base.to(device, dtype).eval().requires_grad_(False)
    return model, base


def _name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


@torch.no_grad()
def benchmark_initial(*, full: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32,
                      steps: Optional[int] = None, models=None) -> BenchResult:
    device = torch.device(device)
    model, base = models or build_models(full, device, dtype)
    size = FULL_SIZE if full else TINY_SIZE
    steps = steps or (5 if full else 2)

    def run(k: int):
        return generate_initial_chunk(base, model, "a red panda climbing a tree",
                                      InitialChunkSettings(steps=k, height=size, width=size), seed=0,
                                      output_device=device)

    with peak_memory(device) as peak:
        seconds, per_step, fixed = measure_steps(run, steps, device)
        mem, kind = peak()
    return BenchResult("initial", str(device), _name(dtype), f"{size}x{size}", 16, steps, seconds, per_step, fixed,
                       INITIAL_CHUNK.steps, mem, kind, note="full size, random weights" if full else "tiny models")


@torch.no_grad()
def benchmark_extend(*, full: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32,
                     steps: Optional[int] = None, models=None) -> BenchResult:
    device = torch.device(device)
    model, _ = models or build_models(full, device, dtype, need_base=False)
    size = FULL_SIZE if full else TINY_SIZE
    steps = steps or (5 if full else 2)
    start = torch.rand(16, size, size, 3, generator=torch.Generator().manual_seed(0))

    def run(k: int):
        settings = ExtensionSettings(["a red panda climbing a tree"], seed=0, steps=k)
        return extend_video(model, start, 24, settings, output_device="cpu")

    with peak_memory(device) as peak:
        seconds, per_step, fixed = measure_steps(run, steps, device)
        mem, kind = peak()
    return BenchResult("extend", str(device), _name(dtype), f"{size}x{size}", 8, steps, seconds, per_step, fixed,
                       EXTENSION.steps, mem, kind,
                       note=("full size, random weights" if full else "tiny models") + "; 8 new frames per chunk")


def benchmark(*, full: bool = False, device: str = "cpu", dtype: torch.dtype = torch.float32,
              steps: Optional[int] = None) -> list[BenchResult]:
    """Both generation stages with one set of models."""
    device = torch.device(device)
    models = build_models(full, device, dtype)
    return [benchmark_initial(full=full, device=device, dtype=dtype, steps=steps, models=models),
            benchmark_extend(full=full, device=device, dtype=dtype, steps=steps, models=models)]
