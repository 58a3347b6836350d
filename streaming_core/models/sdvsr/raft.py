"""Optical flow for Stream-DiffVSR: torchvision's RAFT, driven step by step so work is not repeated.

The official pipeline calls ``raft_large(image1=U_i, image2=U_{i-1})`` for every frame pair, which
runs the feature encoder on both frames, i.e. every frame twice. The feature encoder normalises each
image on its own (InstanceNorm), so the features of U_i computed for pair (i, i-1) are exactly the
features needed as "previous" for pair (i+1, i). ``RaftFlow`` therefore splits RAFT's forward into
``features`` (once per frame) and ``flow`` (once per pair), using torchvision's own submodules. It
also frees the correlation pyramid after each call (torchvision keeps it on the module, which at HR
resolution holds gigabytes between frames).

RAFT always runs in float32: the flow is a sub-pixel quantity in HR pixels; coordinates up to a few
hundred (1/8 of the HR size) lose whole pixels in float16 and the 256-channel correlation dot
products lose precision in bfloat16. It costs little next to the diffusion models.

``RaftConfig`` describes torchvision's RAFT family (raft_large by default) so a tiny RAFT with the
same key layout but small widths can be built for tests, and the architecture of any weight file is
read from its tensor shapes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import torch
from torch import nn
from torch.nn import BatchNorm2d, InstanceNorm2d
from torchvision.models.optical_flow.raft import (
    RAFT,
    CorrBlock,
    FeatureEncoder,
    FlowHead,
    MaskPredictor,
    MotionEncoder,
    RecurrentBlock,
    ResidualBlock,
    UpdateBlock,
)
from torchvision.models.optical_flow._utils import make_coords_grid, upsample_flow

RAFT_ITERATIONS = 12  # torchvision's default num_flow_updates, used by the official get_flow
RAFT_DOWNSAMPLE = 8


@dataclass(frozen=True)
class RaftConfig:
    """torchvision ``RAFT`` hyper-parameters; the defaults are ``raft_large``."""

    feature_layers: tuple = (64, 64, 96, 128, 256)
    context_layers: tuple = (64, 64, 96, 128, 256)
    corr_levels: int = 4
    corr_radius: int = 4
    motion_corr_layers: tuple = (256, 192)
    motion_flow_layers: tuple = (128, 64)
    motion_out_channels: int = 128
    hidden_size: int = 128
    gru_kernels: tuple = ((1, 5), (5, 1))
    flow_head_hidden: int = 256
    mask_hidden: Optional[int] = 256  # None: no mask predictor (bilinear flow upsampling)

    @property
    def min_image_size(self) -> int:
        """Smallest input side: the correlation pyramid halves (levels - 1) times from 1/8 scale."""
        return RAFT_DOWNSAMPLE * 2 * 2 ** (self.corr_levels - 1)

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[int]]) -> "RaftConfig":
        """Every number from the tensor shapes of a RAFT state dict (torchvision key layout)."""

        def out(key):
            return int(shapes[key][0])

        def encoder_layers(prefix):
            return (
                out(f"{prefix}.convnormrelu.0.weight"),
                out(f"{prefix}.layer1.0.convnormrelu1.0.weight"),
                out(f"{prefix}.layer2.0.convnormrelu1.0.weight"),
                out(f"{prefix}.layer3.0.convnormrelu1.0.weight"),
                out(f"{prefix}.conv.weight"),
            )

        me = "update_block.motion_encoder"
        corr_in = int(shapes[f"{me}.convcorr1.0.weight"][1])
        levels, radius = _split_corr_channels(corr_in)
        corr_layers = (out(f"{me}.convcorr1.0.weight"),)
        if f"{me}.convcorr2.0.weight" in shapes:
            corr_layers += (out(f"{me}.convcorr2.0.weight"),)
        gru = "update_block.recurrent_block"
        kernels = tuple(tuple(int(k) for k in shapes[f"{gru}.{name}.convz.weight"][2:])
                        for name in ("convgru1", "convgru2") if f"{gru}.{name}.convz.weight" in shapes)
        return cls(
            feature_layers=encoder_layers("feature_encoder"),
            context_layers=encoder_layers("context_encoder"),
            corr_levels=levels,
            corr_radius=radius,
            motion_corr_layers=corr_layers,
            motion_flow_layers=(out(f"{me}.convflow1.0.weight"), out(f"{me}.convflow2.0.weight")),
            motion_out_channels=out(f"{me}.conv.0.weight") + 2,
            hidden_size=out(f"{gru}.convgru1.convz.weight"),
            gru_kernels=kernels,
            flow_head_hidden=out("update_block.flow_head.conv1.weight"),
            mask_hidden=out("mask_predictor.convrelu.0.weight") if "mask_predictor.convrelu.0.weight" in shapes else None,
        )


def _split_corr_channels(channels: int) -> tuple[int, int]:
    """levels * (2 * radius + 1)^2 = channels: take the largest radius that divides (324 -> 4 levels, r 4)."""
    for radius in range(16, -1, -1):
        side = (2 * radius + 1) ** 2
        if channels % side == 0:
            return channels // side, radius
    raise ValueError(f"cannot split {channels} correlation channels into levels x (2r+1)^2")


def build_raft(cfg: RaftConfig = RaftConfig()) -> RAFT:
    """A torchvision ``RAFT`` from its hyper-parameters (``RaftConfig()`` == ``raft_large(weights=None)``)."""
    corr = CorrBlock(num_levels=cfg.corr_levels, radius=cfg.corr_radius)
    motion = MotionEncoder(in_channels_corr=corr.out_channels, corr_layers=cfg.motion_corr_layers,
                           flow_layers=cfg.motion_flow_layers, out_channels=cfg.motion_out_channels)
    paddings = tuple((k[0] // 2, k[1] // 2) for k in cfg.gru_kernels)
    recurrent = RecurrentBlock(input_size=motion.out_channels + cfg.context_layers[-1] - cfg.hidden_size,
                               hidden_size=cfg.hidden_size, kernel_size=cfg.gru_kernels, padding=paddings)
    update = UpdateBlock(motion_encoder=motion, recurrent_block=recurrent,
                         flow_head=FlowHead(in_channels=cfg.hidden_size, hidden_size=cfg.flow_head_hidden))
    mask = None if cfg.mask_hidden is None else MaskPredictor(in_channels=cfg.hidden_size, hidden_size=cfg.mask_hidden,
                                                              multiplier=0.25)
    return RAFT(
        feature_encoder=FeatureEncoder(block=ResidualBlock, layers=cfg.feature_layers, norm_layer=InstanceNorm2d),
        context_encoder=FeatureEncoder(block=ResidualBlock, layers=cfg.context_layers, norm_layer=BatchNorm2d),
        corr_block=corr,
        update_block=update,
        mask_predictor=mask,
    ).eval()


class RaftFlow(nn.Module):
    """RAFT's forward split into per-frame features and per-pair flow (same arithmetic as torchvision)."""

    def __init__(self, raft: RAFT, config: RaftConfig, iterations: int = RAFT_ITERATIONS):
        super().__init__()
        self.raft = raft.eval()
        self.config = config
        self.iterations = iterations

    @property
    def min_image_size(self) -> int:
        return self.config.min_image_size

    def check_size(self, h: int, w: int) -> None:
        m = self.min_image_size
        if h % RAFT_DOWNSAMPLE or w % RAFT_DOWNSAMPLE or h < m or w < m:
            raise ValueError(f"RAFT needs sides divisible by {RAFT_DOWNSAMPLE} and at least {m} px, got {h}x{w}")

    @torch.no_grad()
    def features(self, image: torch.Tensor) -> torch.Tensor:
        """Feature-encoder output of one image (B,3,H,W) in [-1, 1], float32."""
        self.check_size(*image.shape[-2:])
        return self.raft.feature_encoder(image.float())

    @torch.no_grad()
    def flow(
        self,
        image1: torch.Tensor,
        fmap1: torch.Tensor,
        fmap2: torch.Tensor,
        all_iterations: bool = False,
    ) -> torch.Tensor | list[torch.Tensor]:
        """Flow (B,2,H,W) in pixels from image1 to image2, given both images' features.

        For pixel p of image1, image2 at p + flow(p) matches it. ``all_iterations`` returns every
        refinement (as torchvision does); otherwise only the final flow is upsampled.
        """
        raft = self.raft
        b, _, h, w = image1.shape
        corr = raft.corr_block
        corr.build_pyramid(fmap1, fmap2)
        try:
            context_out = raft.context_encoder(image1.float())
            hidden_size = raft.update_block.hidden_state_size
            hidden, context = torch.split(context_out, [hidden_size, context_out.shape[1] - hidden_size], dim=1)
            hidden, context = torch.tanh(hidden), torch.relu(context)
            coords0 = make_coords_grid(b, h // RAFT_DOWNSAMPLE, w // RAFT_DOWNSAMPLE).to(fmap1.device)
            coords1 = coords0.clone()
            flows = []
            for k in range(self.iterations):
                corr_features = corr.index_pyramid(centroids_coords=coords1)
                hidden, delta = raft.update_block(hidden, context, corr_features, coords1 - coords0)
                coords1 = coords1 + delta
                if all_iterations or k == self.iterations - 1:
                    mask = None if raft.mask_predictor is None else raft.mask_predictor(hidden)
                    flows.append(upsample_flow(flow=coords1 - coords0, up_mask=mask))
        finally:
            corr.corr_pyramid = []  # the all-pairs volume is (HW/64)^2 floats: never keep it between calls
        return flows if all_iterations else flows[-1]

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        """Final flow from image1 to image2, like ``raft(image1, image2)[-1]``."""
        return self.flow(image1, self.features(image1), self.features(image2))
