"""Stream-DiffVSR's temporal tiny autoencoder: a TAESD-style 4x decoder with a Temporal Processor
Module (TPM) in every residual block (spec §2.3), written from the facts.

Why the TPM exists: the decoder sees the clean latent of frame i and, through the TPM, multi-scale
encoder features of the *flow-warped previous HR output*, so detail stays put across frames.

Layer indices (``encoder.layers.N`` / ``decoder.layers.N``) equal the official checkpoint's keys:
encoder = conv, blocks, [stride-2 conv, blocks]..., conv to latent; decoder = conv, act,
[blocks, upsample, conv]..., blocks, conv to RGB. Parameterless layers (activation, upsample) keep
their index so the numbering matches.

Unlike the official code, the previous-frame features are passed as an argument instead of being
stored on the blocks, so nothing needs resetting between frames and the module stays stateless.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Mapping, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

TPM_POOL = 4  # official: AvgPool2d(4, 4) before the temporal 1-D convolution
TPM_GAIN = 0.1  # official: F + 0.1 * upsampled temporal correction


def _activation(name: str) -> nn.Module:
    acts = {"relu": nn.ReLU, "silu": nn.SiLU, "swish": nn.SiLU, "gelu": nn.GELU}
    if name not in acts:
        raise ValueError(f"unknown act_fn {name!r} (one of {', '.join(acts)})")
    return acts[name]()


@dataclass
class TemporalVAEConfig:
    """Everything that shapes the network. Defaults: the official ``vae/config.json``."""

    in_channels: int = 3
    out_channels: int = 3
    latent_channels: int = 4
    encoder_block_out_channels: Sequence[int] = (64, 64, 64)
    decoder_block_out_channels: Sequence[int] = (64, 64, 64)
    num_encoder_blocks: Sequence[int] = (1, 3, 3)
    num_decoder_blocks: Sequence[int] = (3, 3, 1)
    act_fn: str = "relu"
    upsample_fn: str = "nearest"
    upsampling_scaling_factor: int = 2
    temporal_kernel_size: int = 3
    scaling_factor: float = 1.0
    shift_factor: float = 0.0

    @property
    def spatial_factor(self) -> int:
        """HR pixels per latent pixel (4 for the official model: latent = LR size)."""
        return self.upsampling_scaling_factor ** (len(self.decoder_block_out_channels) - 1)

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[int]], hub_config: Optional[dict] = None) -> "TemporalVAEConfig":
        """Widths and block counts from the tensor shapes; activation/upsampling/scaling (which leave no
        trace in shapes) from the folder's config.json when given, else the official values."""
        hub = hub_config or {}

        def layer_kinds(prefix):
            """Per parameterised layer index: ('conv', has_bias, in, out) or ('block', width)."""
            pat = re.compile(re.escape(prefix) + r"(\d+)\.(.+)$")
            found: dict[int, set] = {}
            for key in shapes:
                m = pat.match(key)
                if m:
                    found.setdefault(int(m.group(1)), set()).add(m.group(2))
            kinds = []
            for idx in sorted(found):
                names = found[idx]
                if "conv.0.weight" in names:
                    kinds.append(("block", int(shapes[f"{prefix}{idx}.conv.0.weight"][0])))
                elif "weight" in names:
                    w = shapes[f"{prefix}{idx}.weight"]
                    kinds.append(("conv", "bias" in names, int(w[1]), int(w[0])))
                else:
                    raise KeyError(f"{prefix}{idx}")
            return kinds

        def levels(kinds):
            """Split the layer list at bias-free convs (stride-2 convs / post-upsample convs)."""
            widths, counts = [], []
            for kind in kinds:
                if kind[0] == "block":
                    if not counts or counts[-1] is None:
                        widths.append(kind[1])
                        counts.append(0)
                    counts[-1] += 1
                elif not kind[1]:
                    counts.append(None)  # a new level starts
            counts = [c for c in counts if c is not None]
            return widths, counts

        enc, dec = layer_kinds("encoder.layers."), layer_kinds("decoder.layers.")
        if not enc or not dec or enc[0][0] != "conv" or dec[-1][0] != "conv":
            raise KeyError("encoder.layers.* / decoder.layers.*")
        enc_widths, enc_counts = levels(enc)
        dec_widths, dec_counts = levels(dec)
        tpm_key = next((k for k in shapes if k.endswith("temporal_processor.0.weight")), None)
        return cls(
            in_channels=enc[0][2],
            out_channels=dec[-1][3],
            latent_channels=dec[0][2],
            encoder_block_out_channels=tuple(enc_widths),
            decoder_block_out_channels=tuple(dec_widths),
            num_encoder_blocks=tuple(enc_counts),
            num_decoder_blocks=tuple(dec_counts),
            act_fn=hub.get("act_fn", "relu"),
            upsample_fn=hub.get("upsample_fn", "nearest"),
            upsampling_scaling_factor=int(hub.get("upsampling_scaling_factor", 2)),
            temporal_kernel_size=int(shapes[tpm_key][2]) if tpm_key else 3,
            scaling_factor=float(hub.get("scaling_factor", 1.0)),
            shift_factor=float(hub.get("shift_factor", 0.0)),
        )

    def to_hub_config(self) -> dict:
        """The official ``vae/config.json`` fields (what ``write_tiny_sdvsr`` writes)."""
        d = asdict(self)
        d.pop("temporal_kernel_size")
        for key in ("encoder_block_out_channels", "decoder_block_out_channels", "num_encoder_blocks", "num_decoder_blocks"):
            d[key] = list(d[key])
        d.update(_class_name="TemporalAutoencoderTiny", latent_magnitude=3, latent_shift=0.5, force_upcast=False,
                 block_out_channels=list(self.decoder_block_out_channels))
        return d


class TPMBlock(nn.Module):
    """Residual conv block with the Temporal Processor Module (official ``TemporalAutoencoderTinyBlock``).

    Without ``prev`` it is exactly TAESD's block: relu(conv(x) + x). With ``prev`` (a feature map of
    the warped previous frame, same shape as the block's conv output) both maps are 4x4
    average-pooled, raster-flattened and concatenated along the token axis ([current | previous]); a
    two-layer Conv1d runs over that token sequence, the two halves are mixed by the learned scalar
    ``alpha`` and the bilinearly upsampled result is added with gain 0.1.
    """

    def __init__(self, channels: int, act_fn: str = "relu", temporal_kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            _activation(act_fn),
            nn.Conv2d(channels, channels, 3, padding=1),
            _activation(act_fn),
            nn.Conv2d(channels, channels, 3, padding=1),
        )
        pad = temporal_kernel_size // 2
        self.temporal_processor = nn.Sequential(
            nn.Conv1d(channels, channels, temporal_kernel_size, padding=pad),
            nn.ReLU(),
            nn.Conv1d(channels, channels, temporal_kernel_size, padding=pad),
        )
        self.alpha = nn.Parameter(torch.tensor(0.5))
        self.fuse = nn.ReLU()

    def temporal_correction(self, feat: torch.Tensor, prev: torch.Tensor) -> torch.Tensor:
        if prev.shape != feat.shape:
            raise ValueError(f"TPM previous features {tuple(prev.shape)} do not match the block's {tuple(feat.shape)}")
        cur = F.avg_pool2d(feat, TPM_POOL, TPM_POOL)
        b, c, h, w = cur.shape
        n = h * w
        seq = torch.cat([cur.flatten(2), F.avg_pool2d(prev, TPM_POOL, TPM_POOL).flatten(2)], dim=2)
        mixed = self.temporal_processor(seq)
        alpha = self.alpha.to(mixed.dtype)
        fused = alpha * mixed[:, :, :n] + (1 - alpha) * mixed[:, :, n:]
        return F.interpolate(fused.view(b, c, h, w), size=feat.shape[-2:], mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor, prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        feat = self.conv(x)
        if prev is not None:
            feat = feat + TPM_GAIN * self.temporal_correction(feat, prev)
        return self.fuse(feat + x)


class TemporalEncoderTiny(nn.Module):
    """TAESD encoder whose block outputs serve as the TPM's previous-frame features."""

    def __init__(self, cfg: TemporalVAEConfig):
        super().__init__()
        layers: list[nn.Module] = []
        channels = cfg.encoder_block_out_channels
        for level, (width, blocks) in enumerate(zip(channels, cfg.num_encoder_blocks)):
            if level == 0:
                layers.append(nn.Conv2d(cfg.in_channels, width, 3, padding=1))
            else:
                layers.append(nn.Conv2d(channels[level - 1], width, 3, padding=1, stride=2, bias=False))
            layers += [TPMBlock(width, cfg.act_fn, cfg.temporal_kernel_size) for _ in range(blocks)]
        layers.append(nn.Conv2d(channels[-1], cfg.latent_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    def block_features(self, image: torch.Tensor) -> list[torch.Tensor]:
        """Outputs of every TPM block, shallow to deep, for an image fed as it is.

        The official feature path feeds the warped image in its raw [-1, 1] range, skipping the
        (x+1)/2 mapping of ``forward``; the decoder's TPM weights were trained on exactly that, so it
        is reproduced. The final latent conv is skipped: its output is never used.
        """
        return list(self.block_features_by_layer(image).values())

    def block_features_by_layer(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """``block_features`` keyed by the block's index in ``encoder.layers``."""
        feats = {}
        x = image
        for index, layer in enumerate(list(self.layers)[:-1]):
            x = layer(x)
            if isinstance(layer, TPMBlock):
                feats[index] = x
        return feats

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Image in [-1, 1] -> latent (TAESD convention; not used by the upscaler)."""
        return self.layers(image.add(1).div(2))


class TemporalDecoderTiny(nn.Module):
    def __init__(self, cfg: TemporalVAEConfig):
        super().__init__()
        channels = cfg.decoder_block_out_channels
        layers: list[nn.Module] = [nn.Conv2d(cfg.latent_channels, channels[0], 3, padding=1), _activation(cfg.act_fn)]
        for level, (width, blocks) in enumerate(zip(channels, cfg.num_decoder_blocks)):
            last = level == len(channels) - 1
            layers += [TPMBlock(width, cfg.act_fn, cfg.temporal_kernel_size) for _ in range(blocks)]
            if not last:
                layers.append(nn.Upsample(scale_factor=cfg.upsampling_scaling_factor, mode=cfg.upsample_fn))
                layers.append(nn.Conv2d(width, channels[level + 1], 3, padding=1, bias=False))
            else:
                layers.append(nn.Conv2d(width, cfg.out_channels, 3, padding=1))
        self.layers = nn.Sequential(*layers)

    @property
    def num_tpm_blocks(self) -> int:
        return sum(isinstance(m, TPMBlock) for m in self.layers)

    def forward(self, latent: torch.Tensor, temporal_features: Optional[Sequence[torch.Tensor]] = None) -> torch.Tensor:
        """Latent -> image in ~[-1, 1]. ``temporal_features``: deep-to-shallow, one per TPM block."""
        feats = list(temporal_features) if temporal_features is not None else None
        if feats is not None and len(feats) != self.num_tpm_blocks:
            raise ValueError(f"the decoder has {self.num_tpm_blocks} TPM blocks but got {len(feats)} feature maps")
        x = torch.tanh(latent / 3) * 3
        k = 0
        for layer in self.layers:
            if isinstance(layer, TPMBlock):
                x = layer(x, feats[k] if feats is not None else None)
                k += 1
            else:
                x = layer(x)
        return x.mul(2).sub(1)


class TemporalAutoencoderTiny(nn.Module):
    """Official parameter layout (``encoder.layers.N``, ``decoder.layers.N``); stateless across frames."""

    def __init__(self, cfg: TemporalVAEConfig):
        super().__init__()
        self.config = cfg
        self.encoder = TemporalEncoderTiny(cfg)
        self.decoder = TemporalDecoderTiny(cfg)

    def temporal_features(self, warped_prev: torch.Tensor) -> list[torch.Tensor]:
        """TPM inputs for the decoder from the warped previous HR output, ordered deep to shallow."""
        return self.encoder.block_features(warped_prev)[::-1]

    def decode(self, latent: torch.Tensor, warped_prev: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Frame 0: ``warped_prev=None`` (plain tiny decoder). Later frames: TPM guided by it."""
        feats = None if warped_prev is None else self.temporal_features(warped_prev)
        # the official pipeline divides by scaling_factor (1.0) and ignores shift_factor
        return self.decoder(latent / self.config.scaling_factor, feats)
