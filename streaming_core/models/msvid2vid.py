"""MS-Vid2Vid-XL's UNet (``Vid2VidSDUNet``) as our ModelScope UNet3D plus three wiring differences.

The official network has exactly ModelScope's parameters under other names (spec §6.2), and the same
block order: conv_in -> temporal transformer, levels of [ResBlock + temporal conv, spatial
transformer, temporal transformer], a mid block, a mirrored decoder. So it is ``UNet3D`` with:

- ``downsample_padding=(2, 1)`` and ``upsample_crop_rows=1``: the Downsample pads two rows and
  the Upsample drops the first and last row, built around a 90-row (720 px) latent. Sizes work only
  when latent H % 8 == 2 and W % 8 == 0 (see ``fit_latent_size``);
- the sinusoidal time embedding computed as the official ``pow(10000, -i/half)`` (diffusers uses
  ``exp(-ln(10000) i/half)``, which differs in the last float32 bits);
- the first temporal transformer's head count stored in the config (``num_heads`` of the official
  constructor; 8 in the released model), because heads are invisible in tensor shapes.

The key map between the official names and ours lives in ``checkpoints/msvid2vid.py``.
"""

from __future__ import annotations

import torch

from .attention import TransformerTemporal
from .unet3d import TRANSFORMER_IN_HEADS, UNet3D, UNet3DConfig

DOWNSAMPLE_PADDING = (2, 1)  # (height, width), hard-coded in the official Downsample
UPSAMPLE_CROP_ROWS = 1


def msvid2vid_config(base: UNet3DConfig, transformer_in_heads: int = TRANSFORMER_IN_HEADS) -> UNet3DConfig:
    """The official wiring on top of a config whose numbers were read from shapes."""
    base.downsample_padding = DOWNSAMPLE_PADDING
    base.upsample_crop_rows = UPSAMPLE_CROP_ROWS
    base.extra = dict(base.extra, msvid2vid=True, transformer_in_heads=int(transformer_in_heads))
    return base


def official_sinusoid(timesteps: torch.Tensor, dim: int) -> torch.Tensor:
    """[cos, sin] of t * 10000^(-i/half), in float32 whatever the model dtype (as the official)."""
    half = dim // 2
    t = timesteps.float()
    freqs = torch.pow(10000, -torch.arange(half, device=t.device).to(t).div(half))
    args = torch.outer(t, freqs)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=1)
    return emb


class MSVid2VidUNet(UNet3D):
    """``forward(sample (B, 4, F, H, W), timestep (B,) or scalar, context (B, 77, 1024))`` -> v."""

    def __init__(self, config: UNet3DConfig):
        super().__init__(config)
        heads = int(config.extra.get("transformer_in_heads", TRANSFORMER_IN_HEADS))
        if heads != TRANSFORMER_IN_HEADS:
            ch0 = config.block_out_channels[0]
            self.transformer_in = TransformerTemporal(ch0, heads, config.attention_head_dim, config.norm_num_groups)

    def embed_time(self, timestep, batch: int, num_frames: int, device) -> torch.Tensor:
        t = torch.as_tensor(timestep, device=device)
        t = t.expand(batch) if t.ndim == 0 else t.reshape(batch)
        emb = official_sinusoid(t, self.config.block_out_channels[0]).to(self.dtype)
        return self.time_embedding(emb).repeat_interleave(num_frames, dim=0)


def latent_size_ok(height: int, width: int, downsamples: int = 3) -> bool:
    """Downsample maps h -> (h+1)//2 + 1 and w -> ceil(w/2); Upsample maps h -> 2h - 2 and w -> 2w.
    The skips line up only if every level's h and w are even: H % 2^d == 2 % 2^d and W % 2^d == 0
    for d downsamples (H % 8 == 2, W % 8 == 0 for the official three)."""
    m = 2**downsamples
    return height % m == 2 % m and width % m == 0


def fit_latent_size(height: int, width: int, downsamples: int = 3) -> tuple[int, int]:
    """The smallest latent size >= (height, width) the official UNet accepts."""
    m = 2**downsamples
    return height + (2 - height) % m, width + (-width) % m
