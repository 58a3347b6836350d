"""Tiny random enhancers with the real architectures and file layouts, for tests, the demo and make-tiny.

- MS-Vid2Vid-XL: the UNet in the official key layout (``non_ema_0035000.pth``), an open_clip
  checkpoint with a tiny text tower plus stand-in visual/CLIP-head tensors
  (``open_clip_pytorch_model.bin``), and an SD-style checkpoint whose ``state_dict`` holds the VAE
  under ``first_stage_model.*`` (``v2-1_512-ema-pruned.ckpt``). All three are plain pickles readable
  with ``torch.load(weights_only=True)``, like the real files.
- A diffusers UNet3D enhancer folder (``zeroscope_v2_XL/``: unet/, text_encoder/, vae/, scheduler/).

The text towers are 32 wide but keep the real 49,408-token vocabulary so real prompts tokenize.
The tiny UNets have three levels, so MS-Vid2Vid-XL's size rule becomes latent H % 4 == 2, W % 4 == 0.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch

from ..checkpoints.enhancer import make_msvid2vid_enhancer, make_unet3d_enhancer
from ..checkpoints.ldm_vae import diffusers_to_ldm
from ..checkpoints.msvid2vid import UNET_FILE, official_state_dict
from ..checkpoints.open_clip_text import open_clip_to_hf_text
from ..models.clip_tokenizer import VOCAB_SIZE
from ..models.enhancer import NativeResolution
from ..models.msvid2vid import MSVid2VidUNet, msvid2vid_config
from ..models.text_encoder import CLIPTextEncoder, text_config_from_state_dict
from ..models.unet3d import UNet3D, UNet3DConfig
from ..models.vae import SCALING_FACTOR
from ..state_files import save_safetensors, save_torch
from .st2v import randomize_

TEXT_WIDTH = 32
TEXT_LAYERS = 3  # MS-Vid2Vid-XL uses all but the last
MSVID2VID_DIR = "streamingt2v"
ZEROSCOPE_DIR = "zeroscope_v2_XL"
# frames of a tiny run: fitted into 48x32 and padded; latent 24x16 -> 24x18 for the MS size rule
TINY_RESOLUTION = NativeResolution(48, 32, pad=True)


def tiny_unet_config(cross_attention_dim: int = TEXT_WIDTH) -> UNet3DConfig:
    return UNet3DConfig(block_out_channels=(32, 64, 64), down_attention=(True, True, False), layers_per_block=1,
                        attention_head_dim=8, cross_attention_dim=cross_attention_dim)


def tiny_vae_config(levels: int = 2) -> dict:
    """``levels`` 2: frames / 2 in latents (the tests' default: small canvases keep a few latent pixels);
    4: frames / 8 like the SD VAE, so a canvas gives the UNet the latent size (and attention cost) a
    real enhancer has there (the benchmarks at 320x192: with / 2 the tiny UNet's spatial attention
    over 160x96 tokens took 80% of a 44 s 4-frame call, 256x the attention of a real / 8 VAE)."""
    return dict(in_channels=3, out_channels=3, down_block_types=["DownEncoderBlock2D"] * levels,
                up_block_types=["UpDecoderBlock2D"] * levels, block_out_channels=[32] * levels, layers_per_block=1,
                latent_channels=4, norm_num_groups=32, scaling_factor=SCALING_FACTOR)


def build_tiny_msvid2vid_unet(seed: int = 0) -> MSVid2VidUNet:
    unet = MSVid2VidUNet(msvid2vid_config(tiny_unet_config()))
    randomize_(unet, seed)
    return unet.eval().requires_grad_(False)


def build_tiny_unet3d(seed: int = 0) -> UNet3D:
    unet = UNet3D(tiny_unet_config())
    randomize_(unet, seed)
    return unet.eval().requires_grad_(False)


def build_tiny_vae(seed: int = 0, levels: int = 2):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**tiny_vae_config(levels))
    randomize_(vae, seed)
    return vae.eval().requires_grad_(False)


def tiny_open_clip_state_dict(seed: int = 0, width: int = TEXT_WIDTH, layers: int = TEXT_LAYERS) -> dict:
    """open_clip's key layout: text tower, CLIP head, and a few stand-in visual tensors."""
    gen = torch.Generator().manual_seed(seed)

    def w(*shape, scale=None):
        return torch.randn(shape, generator=gen) * (scale if scale is not None else shape[-1] ** -0.5)

    sd = {"token_embedding.weight": w(VOCAB_SIZE, width, scale=0.02), "positional_embedding": w(77, width, scale=0.01),
          "ln_final.weight": 1 + w(width, scale=0.1), "ln_final.bias": w(width, scale=0.1),
          "text_projection": w(width, width), "logit_scale": torch.tensor(4.6052),
          "visual.conv1.weight": w(16, 3, 14, 14), "visual.class_embedding": w(16, scale=0.02)}
    for i in range(layers):
        p = f"transformer.resblocks.{i}."
        sd.update({p + "ln_1.weight": 1 + w(width, scale=0.1), p + "ln_1.bias": w(width, scale=0.1),
                   p + "attn.in_proj_weight": w(3 * width, width), p + "attn.in_proj_bias": w(3 * width, scale=0.02),
                   p + "attn.out_proj.weight": w(width, width), p + "attn.out_proj.bias": w(width, scale=0.02),
                   p + "ln_2.weight": 1 + w(width, scale=0.1), p + "ln_2.bias": w(width, scale=0.1),
                   p + "mlp.c_fc.weight": w(4 * width, width), p + "mlp.c_fc.bias": w(4 * width, scale=0.02),
                   p + "mlp.c_proj.weight": w(width, 4 * width), p + "mlp.c_proj.bias": w(width, scale=0.02)})
    return sd



def write_tiny_msvid2vid(folder: str | os.PathLike, seed: int = 0, vae_levels: int = 2) -> dict[str, Path]:
    """The three MS-Vid2Vid-XL files under their real names in ``folder`` (``vae_levels``: see tiny_vae_config)."""
    folder = Path(folder)
    unet = build_tiny_msvid2vid_unet(seed)
    vae = build_tiny_vae(seed + 1, vae_levels)
    return {
        "unet": save_torch(official_state_dict(unet), folder / UNET_FILE),
        "text": save_torch(tiny_open_clip_state_dict(seed + 2), folder / "open_clip_pytorch_model.bin"),
        "vae": save_torch({"state_dict": diffusers_to_ldm(vae.state_dict()), "global_step": 0},
                                  folder / "v2-1_512-ema-pruned.ckpt"),
    }


def write_tiny_unet3d_enhancer(folder: str | os.PathLike, seed: int = 0, dtype: Optional[torch.dtype] = None) -> Path:
    """A diffusers-layout UNet3D enhancer folder (zeroscope_v2_XL's layout)."""
    folder = Path(folder)

    def cast(sd):
        return {k: v.to(dtype) if dtype is not None and v.is_floating_point() else v for k, v in sd.items()}

    save_safetensors(cast(build_tiny_unet3d(seed).state_dict()), folder / "unet" / "diffusion_pytorch_model.safetensors",
                     metadata={"format": "pt"})
    text = open_clip_to_hf_text(tiny_open_clip_state_dict(seed + 2), skip_last_layers=1)
    save_safetensors(cast(text), folder / "text_encoder" / "model.safetensors", metadata={"format": "pt"})
    save_safetensors(cast(build_tiny_vae(seed + 1).state_dict()), folder / "vae" / "diffusion_pytorch_model.safetensors",
                     metadata={"format": "pt"})
    scheduler = folder / "scheduler" / "scheduler_config.json"
    scheduler.parent.mkdir(parents=True, exist_ok=True)
    scheduler.write_text(json.dumps({"_class_name": "DDIMScheduler", "num_train_timesteps": 1000, "beta_start": 0.00085,
                                     "beta_end": 0.012, "beta_schedule": "scaled_linear",
                                     "prediction_type": "epsilon"}, indent=2))
    return folder


def write_tiny_enhancers(models_dir: str | os.PathLike, seed: int = 0) -> dict[str, Path]:
    """Both tiny enhancers under ``models_dir/streamingt2v/``: the MS-Vid2Vid-XL files by their real
    names, and ``zeroscope_v2_XL/`` in the diffusers layout. Returns the paths to pass to the loader."""
    root = Path(models_dir) / MSVID2VID_DIR
    files = write_tiny_msvid2vid(root, seed)
    return {"ms_vid2vid_xl": root, **{f"ms_vid2vid_xl.{k}": v for k, v in files.items()},
            "zeroscope": write_tiny_unet3d_enhancer(root / ZEROSCOPE_DIR, seed)}


# -- in-memory enhancers for the benchmark (random weights, nothing written) ---------------------------
def full_unet_config() -> UNet3DConfig:
    """The released MS-Vid2Vid-XL / ModelScope-family UNet size (spec §6.2), for benchmarks only:
    loaders always read sizes from the files."""
    return UNet3DConfig(block_out_channels=(320, 640, 1280, 1280), down_attention=(True, True, True, False),
                        layers_per_block=2, attention_head_dim=64, cross_attention_dim=1024)


def build_benchmark_enhancer(kind: str = "ms_vid2vid_xl", *, full: bool = False, seed: int = 0, device="cpu"):
    """An ``Enhancer`` of random weights: tiny, or at the released size (built on ``device``)."""
    from diffusers import AutoencoderKL

    if kind not in ("ms_vid2vid_xl", "diffusers_unet3d"):
        raise ValueError(f"unknown enhancer kind {kind!r}")
    torch.manual_seed(seed)
    if not full:
        unet = build_tiny_msvid2vid_unet(seed) if kind == "ms_vid2vid_xl" else build_tiny_unet3d(seed)
        text_sd = open_clip_to_hf_text(tiny_open_clip_state_dict(seed + 2), skip_last_layers=1)
        text = CLIPTextEncoder(text_config_from_state_dict(text_sd))
        text.load_state_dict(text_sd)
        vae = build_tiny_vae(seed + 1)
    else:
        from transformers import CLIPTextConfig

        with torch.device(device):
            config = full_unet_config()
            unet = MSVid2VidUNet(msvid2vid_config(config)) if kind == "ms_vid2vid_xl" else UNet3D(config)
            text = CLIPTextEncoder(CLIPTextConfig(vocab_size=VOCAB_SIZE, hidden_size=1024, intermediate_size=4096,
                                                  num_hidden_layers=23, num_attention_heads=16,
                                                  max_position_embeddings=77, hidden_act="gelu",
                                                  attn_implementation="sdpa"))
            vae = AutoencoderKL(block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
                                up_block_types=["UpDecoderBlock2D"] * 4, layers_per_block=2, latent_channels=4,
                                norm_num_groups=32, scaling_factor=SCALING_FACTOR)
    for module in (unet, text, vae):
        module.eval().requires_grad_(False)
    if kind == "ms_vid2vid_xl":
        return make_msvid2vid_enhancer(unet, text, vae, source="random weights")
    return make_unet3d_enhancer(unet, text, vae, source="random weights")
