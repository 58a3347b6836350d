"""A tiny random StreamingT2V with every part of the real one, for tests, the demo and make-tiny.

Widths are small but the numbers the official code hard-codes are kept: 77 text + 16 APM tokens of
width 1024, merger heads of 64 channels (so every UNet level has 64), 3 mergers per down block
(layers_per_block 2), 8-head ``transformer_in``, the CAM frame encoder's stride pattern. The
parameters the official code zero-initialises (APM alphas, merger ``proj_out``, the frame encoder's
``conv_out``, the last temporal convs) are random here, so tests see CAM and APM act.

Size floor: the UNet and CAM encoder need ~13.8 M parameters at these widths, and a CLIP text
encoder of width 1024 needs 4.2 M for one attention layer plus 1024 per vocabulary entry (50.6 M
for the real 49,408-token vocabulary that real prompts need; tests that never tokenize pass a
small ``text_vocab_size``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch

from ..checkpoints.st2v import save_streamingt2v
from ..models.apm import ResamplerConfig
from ..models.clip_image import OPEN_CLIP_TEXT_LEFTOVERS, VisionTowerConfig
from ..models.clip_tokenizer import VOCAB_SIZE
from ..models.streamingt2v import StreamingT2V, StreamingT2VConfig
from ..models.unet3d import UNet3DConfig
from ..models.vae import SCALING_FACTOR
from ..state_files import save_torch

TINY_LATENT_HW = (8, 8)  # 64 x 64 pixels; latent sides divisible by 8 (three downsamplers)


def tiny_text_config(vocab_size: int = VOCAB_SIZE, layers: int = 1, intermediate: int = 64):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=vocab_size, hidden_size=1024, intermediate_size=intermediate, num_hidden_layers=layers,
        num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu", layer_norm_eps=1e-5,
        projection_dim=512, bos_token_id=0, eos_token_id=2, pad_token_id=1, attn_implementation="sdpa",
    )


def tiny_vae_config() -> dict:
    return dict(
        in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, block_out_channels=[32, 32, 32, 32], layers_per_block=1,
        latent_channels=4, norm_num_groups=32, use_quant_conv=True, use_post_quant_conv=True,
        mid_block_add_attention=True, scaling_factor=SCALING_FACTOR,
    )


def tiny_config(text_vocab_size: int = VOCAB_SIZE, image_encoder: bool = True, text_encoder: bool = True,
                vae: bool = True) -> StreamingT2VConfig:
    unet = UNet3DConfig(block_out_channels=(64, 64, 64, 64), attention_head_dim=8, cross_attention_dim=1024,
                        apm=True, cam_mergers=True)
    cam_unet = UNet3DConfig(block_out_channels=(64, 64, 64, 64), attention_head_dim=8, cross_attention_dim=1024)
    return StreamingT2VConfig(
        unet=unet,
        cam_unet=cam_unet,
        cam_frame_channels=(16, 32, 32, 48),
        resampler=ResamplerConfig(embed_dim=1024, inner_dim=16),
        image_encoder=VisionTowerConfig(image_size=224, patch_size=32, width=64, layers=1, heads=1,
                                        mlp_ratio=2.0, output_dim=1024) if image_encoder else None,
        text_encoder=tiny_text_config(text_vocab_size) if text_encoder else None,
        vae=tiny_vae_config() if vae else None,
    )


@torch.no_grad()
def randomize_(model: torch.nn.Module, seed: int) -> None:
    """Seeded, init-order independent values: weights N(0,1)/sqrt(fan_in), biases N(0, 0.1^2),
    norm weights 1 + N(0, 0.2^2), scalar gates (APM alpha) U(0.4, 1.6); nothing left at zero."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters(), key=lambda kv: kv[0]):
        if p.ndim == 0:
            value = 0.4 + 1.2 * torch.rand((), generator=gen)
        elif p.ndim == 1 and name.endswith("weight"):
            value = 1 + 0.2 * torch.randn(p.shape, generator=gen)
        elif p.ndim == 1:
            value = 0.1 * torch.randn(p.shape, generator=gen)
        else:
            fan_in = p[0].numel()
            value = torch.randn(p.shape, generator=gen) / fan_in**0.5
        p.copy_(value.to(p.dtype))


def build_tiny_streamingt2v(seed: int = 0, *, text_vocab_size: int = VOCAB_SIZE, image_encoder: bool = True,
                            text_encoder: bool = True, vae: bool = True,
                            dtype: torch.dtype = torch.float32) -> StreamingT2V:
    model = StreamingT2V(tiny_config(text_vocab_size, image_encoder, text_encoder, vae))
    randomize_(model, seed)
    return model.to(dtype).eval().requires_grad_(False)


def tiny_official_state_dict(model: StreamingT2V, dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """The official key layout, including the six unused open_clip text-side tensors (small here)."""
    sd = model.official_state_dict()
    if model.image_encoder is not None:
        width = 64
        leftovers = {"token_embedding.weight": (16, width), "positional_embedding": (77, width),
                     "text_projection": (width, width), "logit_scale": (), "ln_final.weight": (width,),
                     "ln_final.bias": (width,)}
        assert set(leftovers) == set(OPEN_CLIP_TEXT_LEFTOVERS)
        gen = torch.Generator().manual_seed(1)
        sd.update({f"image_encoder.model.{k}": torch.randn(shape, generator=gen) for k, shape in leftovers.items()})
    if dtype is not None:
        sd = {k: v.to(dtype) if v.is_floating_point() else v for k, v in sd.items()}
    return sd


def write_tiny_checkpoint(model: StreamingT2V, path: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> Path:
    """An official-style Lightning checkpoint (``{"state_dict": ..., "epoch": ...}``), readable with
    ``torch.load(weights_only=True)``."""
    ckpt = {"state_dict": tiny_official_state_dict(model, dtype), "epoch": 0, "global_step": 0,
            "pytorch-lightning_version": "2.0.0", "loops": {}, "callbacks": {}}
    return save_torch(ckpt, path)


def write_tiny_safetensors(model: StreamingT2V, path: str | os.PathLike, dtype: Optional[torch.dtype] = None) -> Path:
    """Our safetensors format (official keys + format metadata)."""
    save_streamingt2v(tiny_official_state_dict(model, dtype), path)
    return Path(path)
