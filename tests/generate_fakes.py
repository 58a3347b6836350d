"""A fast stand-in for the StreamingT2V model, for the chunk-loop tests.

It has the methods the loop and the real ``pipelines.extend.extend_chunk`` call (prompt and anchor
tokens, ``predict_noise`` with CAM frames, ``decode_latents``), computed by a few cheap tensor ops
that still depend on every input: the latents, the text tokens, the anchor tokens and the CAM
frames. So the loop runs through the real extension step, DDIM and guidance in milliseconds, and a
wrong prompt, anchor or conditioning frame changes the output. Every call is recorded for spies.
"""

from __future__ import annotations

import hashlib

import torch
import torch.nn.functional as F
from torch import nn

from streaming_core.models.streamingt2v import StreamingT2V

WIDTH = 8  # token width (the real model's 1024 is irrelevant to the loop)


def prompt_code(prompt: str) -> float:
    """A number identifying a prompt; the fake text tokens are filled with it."""
    return int(hashlib.sha256(prompt.encode()).hexdigest()[:6], 16) / 2**24 + 0.5


class _Config:
    in_channels = 4


class _Unet(nn.Module):
    def __init__(self):
        super().__init__()
        self.config = _Config()
        self.conv_in = nn.Conv2d(4, 4, 1)

    @property
    def dtype(self):
        return self.conv_in.weight.dtype


class _FrameEncoder(nn.Module):
    downscale = 8


class _Cam(nn.Module):
    def __init__(self):
        super().__init__()
        self.controlnet_cond_embedding = _FrameEncoder()


class FakeStreamingT2V(nn.Module):
    context = staticmethod(StreamingT2V.context)

    def __init__(self, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.unet = _Unet()
        self.cam = _Cam()
        self.text_encoder = nn.Identity()  # present (the pipelines check), used through encode_prompts
        self.vae = nn.Identity()  # present, used through decode_latents
        self.mix = nn.Parameter(torch.randn(WIDTH, 4, generator=gen) * 0.3)
        self.frame_mix = nn.Parameter(torch.randn(3, 4, generator=gen) * 0.5)
        self.decode_mix = nn.Parameter(torch.randn(4, 3, generator=gen) * 0.7)
        self.anchor_mix = nn.Parameter(torch.randn(3, WIDTH, generator=gen))
        self.prompts_encoded: list[str] = []
        self.predict_calls: list[dict] = []

    @property
    def device(self) -> torch.device:
        return self.mix.device

    @property
    def dtype(self) -> torch.dtype:
        return self.mix.dtype

    def encode_prompts(self, prompts):
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        self.prompts_encoded += prompts
        codes = torch.tensor([prompt_code(p) for p in prompts], device=self.device)
        ramp = torch.linspace(-1, 1, 77 * WIDTH, device=self.device).reshape(77, WIDTH)
        return codes[:, None, None] * (1 + 0.1 * ramp)

    def anchor_tokens(self, anchor: torch.Tensor) -> torch.Tensor:
        if anchor.ndim == 4:
            anchor = anchor[:, None]
        colour = anchor.float().mean(dim=(1, 3, 4))  # (B, 3)
        return (colour @ self.anchor_mix)[:, None, :].expand(-1, 16, -1) + 0.01

    def grey_anchor_tokens(self, like=None, batch: int = 1) -> torch.Tensor:
        return self.anchor_tokens(torch.zeros(batch, 3, 8, 8, device=self.device))

    def predict_noise(self, latents, timestep, context, cam_frames=None, **_):
        self.predict_calls.append({"batch": latents.shape[0], "timestep": int(timestep),
                                   "text_code": context[:, :77].mean(dim=(1, 2)).tolist(),
                                   "anchor": context[:, 77:].mean(dim=(1, 2)).tolist()})
        ctx = context.mean(dim=1) @ self.mix  # (B, 4)
        out = latents * 0.3 + ctx[:, :, None, None, None]
        if cam_frames is not None:
            pooled = F.avg_pool2d(cam_frames.flatten(0, 1), 8).reshape(*cam_frames.shape[:2], 3, *latents.shape[-2:])
            cam = torch.einsum("bfchw,cd->bdhw", pooled, self.frame_mix) / cam_frames.shape[1]
            out = out + cam[:, :, None]
        return torch.tanh(out)

    def decode_latents(self, latents, slice_size: int = 8):
        x = torch.einsum("bcfhw,cd->bfdhw", latents, self.decode_mix)
        x = x.repeat_interleave(8, dim=-1).repeat_interleave(8, dim=-2)
        return torch.sigmoid(x)


class _BaseConfig:
    in_channels = 4
    cross_attention_dim = WIDTH
    cam_mergers = False
    apm = False


class FakeBaseUNet(nn.Module):
    """Stands in for the stock ModelScope UNet3D of the first chunk: ``forward(sample, t, context)``."""

    def __init__(self, seed: int = 0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed + 100)
        self.config = _BaseConfig()
        self.conv_in = nn.Conv2d(4, 4, 1)
        self.mix = nn.Parameter(torch.randn(WIDTH, 4, generator=gen) * 0.3)
        self.calls: list[dict] = []

    @property
    def dtype(self):
        return self.mix.dtype

    def forward(self, sample, timestep, context):
        self.calls.append({"batch": sample.shape[0], "timestep": int(timestep),
                           "text_code": context[:, :77].mean(dim=(1, 2)).tolist()})
        return torch.tanh(sample * 0.3 + (context.mean(dim=1) @ self.mix)[:, :, None, None, None])
