"""One small deterministic workload per model, touching every network of it (text and image encoders,
denoiser, CAM, VAE, RAFT, ControlNet), for the memory checks: partial load in ComfyUI, fp8 storage,
``--offload`` and the benchmark smoke run all compare a workload's output under one memory setting
with the same workload under another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..models.operations import execution_device, execution_dtype
from ..official import REFINE
from ..sampling.guided_model import enhancer_chunk_model
from .enhancer import build_benchmark_enhancer
from .modelscope import build_tiny_modelscope_unet
from .st2v import build_tiny_streamingt2v


@dataclass(frozen=True)
class Workload:
    name: str
    build: Callable[[], object]             # -> the model object (an nn.Module or a bundle)
    networks: Callable[[object], dict]      # model -> {name: nn.Module}: everything a memory manager moves
    fp8_parts: tuple[str, ...]              # the networks whose weights fp8 storage applies to
    run: Callable[[object], torch.Tensor]   # model -> output (float32, CPU)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _st2v():
    return build_tiny_streamingt2v(seed=0)


@torch.no_grad()
def _run_st2v(model) -> torch.Tensor:
    g = _gen()
    latents = torch.randn(1, 4, 16, 8, 8, generator=g)
    cam = torch.rand(1, 8, 3, 64, 64, generator=g) * 2 - 1
    anchor = torch.rand(1, 3, 64, 64, generator=g) * 2 - 1
    context = model.context(model.encode_prompts(["a red fox"]), model.anchor_tokens(anchor))
    eps = model.predict_noise(latents, 500, context, cam)
    pixels = model.decode_latents(eps[:, :, :2])
    return torch.cat([eps.float().cpu().flatten(), pixels.float().cpu().flatten()])


def _st2v_networks(model) -> dict:
    return {name: getattr(model, name) for name in ("unet", "cam", "resampler", "image_encoder", "text_encoder", "vae")
            if getattr(model, name, None) is not None}


def _modelscope():
    return build_tiny_modelscope_unet(seed=0)


@torch.no_grad()
def _run_unet3d(unet) -> torch.Tensor:
    g = _gen()
    x = torch.randn(2, unet.config.in_channels, 4, 8, 8, generator=g)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, generator=g)
    device, dtype = execution_device(unet), execution_dtype(unet)
    return unet(x.to(device, dtype), torch.tensor([10, 700], device=device), ctx.to(device, dtype)).float().cpu()


def _enhancer(kind: str):
    def build():
        return build_benchmark_enhancer(kind, full=False, seed=0)
    return build


@torch.no_grad()
def _run_enhancer(enhancer) -> torch.Tensor:
    g = _gen()
    pixels = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    cond, uncond = enhancer.encode_prompts("a red fox")
    z = enhancer.encode(pixels.to(enhancer.device), generator=_gen(1))
    eps = enhancer_chunk_model(enhancer, cond, uncond, REFINE.guidance)(z, 300)
    out = enhancer.decode(eps.float())
    return torch.cat([eps.float().cpu().flatten(), out.flatten()])


def _enhancer_networks(enhancer) -> dict:
    return {"unet": enhancer.unet, "text_encoder": enhancer.text_encoder, "vae": enhancer.vae}


def _sdvsr():
    from .sdvsr import build_tiny_sdvsr

    return build_tiny_sdvsr(seed=0)


@torch.no_grad()
def _run_sdvsr(models) -> torch.Tensor:
    from ..pipelines.upscale import UpscaleSettings, upscale_stream

    frames = (torch.rand(2, 16, 16, 3, generator=_gen()) * 255).to(torch.uint8)
    out = list(upscale_stream(models, frames, settings=UpscaleSettings(seed=7, steps=2)))
    return torch.stack([torch.as_tensor(f) for f in out]).float().flatten()


def _sdvsr_networks(models) -> dict:
    return {"unet": models.unet, "controlnet": models.controlnet, "vae": models.vae, "raft": models.raft}


WORKLOADS = {
    w.name: w for w in (
        Workload("streamingt2v", _st2v, _st2v_networks, ("unet", "cam"), _run_st2v),
        Workload("modelscope_unet", _modelscope, lambda m: {"unet": m}, ("unet",), _run_unet3d),
        Workload("enhancer_msvid2vid", _enhancer("ms_vid2vid_xl"), _enhancer_networks, ("unet",), _run_enhancer),
        Workload("enhancer_unet3d", _enhancer("diffusers_unet3d"), _enhancer_networks, ("unet",), _run_enhancer),
        Workload("stream_diffvsr", _sdvsr, _sdvsr_networks, ("unet", "controlnet"), _run_sdvsr),
    )
}
