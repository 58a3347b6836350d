"""The StreamingT2V model: every network of the official ``VideoLDM`` in one container.

Attribute -> official checkpoint prefix (mind the naming trap: the official ``unet.`` is the CAM
encoder, the denoiser is ``base_model.``):

    unet           base_model.     UNet3D denoiser with APM mixers and CAM mergers
    cam            unet.           CAM encoder (frame encoder + UNet encoder copy)
    resampler      resampler.      APM MLP: CLIP image vector -> 16 tokens
    image_encoder  image_encoder.  OpenCLIP ViT visual tower (optional: other sources exist)
    text_encoder   text_encoder.   CLIPTextModel (optional)
    vae            vae.            AutoencoderKL (optional)

Shapes used throughout: latents (B, 4, F, h, w); pixels (B, F, 3, H, W) signed [-1, 1]; the context
(B, 93, 1024) = 77 text tokens || 16 APM tokens, shared by all frames of a video.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import torch
from torch import nn

from ..errors import InputError
from .apm import APM_TOKENS, ImageContextResampler, ResamplerConfig
from .cam import CAMEncoder
from .clip_image import OpenCLIPImageEncoder, VisionTowerConfig
from .operations import execution_device
from .text_encoder import CLIPTextEncoder
from .unet3d import UNet3D, UNet3DConfig
from .vae import build_vae, decode_video, to_unit_range

TEXT_TOKENS = 77
CONTEXT_TOKENS = TEXT_TOKENS + APM_TOKENS  # 93

OFFICIAL_PREFIXES = {
    "unet": "base_model.",
    "cam": "unet.",
    "resampler": "resampler.",
    "image_encoder": "image_encoder.",
    "text_encoder": "text_encoder.",
    "vae": "vae.",
}
REQUIRED_COMPONENTS = ("unet", "cam", "resampler")
OPTIONAL_COMPONENTS = ("image_encoder", "text_encoder", "vae")


@dataclass
class StreamingT2VConfig:
    unet: UNet3DConfig
    cam_unet: UNet3DConfig
    cam_frame_channels: tuple = (32, 96, 256, 512)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    image_encoder: Optional[VisionTowerConfig] = None
    text_encoder: Optional[object] = None  # transformers CLIPTextConfig
    vae: Optional[dict] = None  # AutoencoderKL arguments


def _distinct_rows(*tensors: torch.Tensor) -> tuple[list[int], list[int]]:
    """Representative row indices and, per row, which representative equals it (all tensors alike)."""
    reps: list[int] = []
    inverse: list[int] = []
    for i in range(tensors[0].shape[0]):
        for j, r in enumerate(reps):
            if all(torch.equal(t[i], t[r]) for t in tensors):
                inverse.append(j)
                break
        else:
            reps.append(i)
            inverse.append(len(reps) - 1)
    return reps, inverse


class StreamingT2V(nn.Module):
    def __init__(self, config: StreamingT2VConfig):
        super().__init__()
        self.config = config
        self.unet = UNet3D(config.unet)
        self.cam = CAMEncoder(config.cam_unet, config.cam_frame_channels)
        self.resampler = ImageContextResampler(config.resampler)
        self.image_encoder = OpenCLIPImageEncoder(config.image_encoder) if config.image_encoder else None
        if config.text_encoder is not None:
            self.text_encoder = CLIPTextEncoder(config.text_encoder)
        else:
            self.text_encoder = None
        if config.vae is not None:
            self.vae = build_vae(config.vae)
        else:
            self.vae = None

    @classmethod
    def from_components(cls, config: StreamingT2VConfig, **modules: Optional[nn.Module]) -> "StreamingT2V":
        """Wrap already-built (e.g. checkpoint-loaded) parts; absent optional parts stay None."""
        unknown = set(modules) - set(OFFICIAL_PREFIXES)
        if unknown:
            raise ValueError(f"unknown StreamingT2V components: {sorted(unknown)}")
        missing = [name for name in REQUIRED_COMPONENTS if modules.get(name) is None]
        if missing:
            raise ValueError(f"StreamingT2V needs {', '.join(missing)}")
        self = cls.__new__(cls)
        nn.Module.__init__(self)
        self.config = config
        for name in OFFICIAL_PREFIXES:
            setattr(self, name, modules.get(name))
        return self.eval()

    # -- bookkeeping -----------------------------------------------------------------------------
    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    @property
    def device(self) -> torch.device:
        return execution_device(self.unet)

    def components(self) -> dict[str, nn.Module]:
        return {name: getattr(self, name) for name in OFFICIAL_PREFIXES if getattr(self, name) is not None}

    def official_state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors under the official checkpoint names (what ``checkpoints.st2v`` loads)."""
        out = {}
        for name, module in self.components().items():
            prefix = OFFICIAL_PREFIXES[name]
            out.update({prefix + k: v for k, v in module.state_dict().items()})
        return out

    def official_submodule(self, key: str) -> nn.Module:
        """The module behind an official key prefix, e.g. ``base_model.down_blocks.0.attentions.0``."""
        for name, prefix in OFFICIAL_PREFIXES.items():
            if key.startswith(prefix):
                module = getattr(self, name)
                rest = key[len(prefix):]
                if name == "cam" and not rest.startswith("controlnet_cond_embedding"):
                    rest = "trunk." + rest
                return module.get_submodule(rest) if rest else module
        raise KeyError(f"{key} has no official StreamingT2V prefix ({', '.join(OFFICIAL_PREFIXES.values())})")

    def _require(self, name: str, why: str) -> nn.Module:
        module = getattr(self, name)
        if module is None:
            raise InputError(f"this StreamingT2V model has no {name} (its checkpoint did not include one); "
                             f"{why}")
        return module

    # -- conditioning ----------------------------------------------------------------------------
    @torch.no_grad()
    def encode_prompts(self, prompts: str | Sequence[str]) -> torch.Tensor:
        """Prompts -> (B, 77, 1024) text tokens in the denoiser's dtype."""
        encoder = self._require("text_encoder", "load a text encoder or pass text embeddings directly.")
        return encoder.encode(prompts).to(self.device, self.dtype)

    @torch.no_grad()
    def clip_embeddings(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) signed pixels -> (N, D) pooled CLIP image embeddings."""
        encoder = self._require("image_encoder", "load an OpenCLIP ViT-H/14 image encoder for the APM anchor.")
        device = execution_device(encoder)
        return encoder(pixels.to(device))

    @torch.no_grad()
    def tokens_from_clip_embeddings(self, embeddings: torch.Tensor) -> torch.Tensor:
        """(B, F, D) CLIP embeddings of each video's anchor frames -> (B, 16, 1024) APM tokens."""
        device = execution_device(self.resampler)
        return self.resampler(embeddings.to(device)).to(self.device, self.dtype)

    @torch.no_grad()
    def anchor_tokens(self, anchor: torch.Tensor) -> torch.Tensor:
        """APM tokens of the anchor frame(s): (B, 3, H, W) or (B, F, 3, H, W) signed pixels ->
        (B, 16, 1024). Several frames of one video are averaged after CLIP, as officially."""
        if anchor.ndim == 4:
            anchor = anchor[:, None]
        if anchor.ndim != 5 or anchor.shape[2] != 3:
            raise InputError(f"anchor frames must be (B, 3, H, W) or (B, F, 3, H, W) RGB, got {tuple(anchor.shape)}")
        b, f = anchor.shape[:2]
        emb = self.clip_embeddings(anchor.reshape(b * f, *anchor.shape[2:]))
        return self.tokens_from_clip_embeddings(emb.reshape(b, f, -1))

    @torch.no_grad()
    def grey_anchor_tokens(self, like: Optional[torch.Tensor] = None, batch: int = 1) -> torch.Tensor:
        """The unconditional APM tokens: resampler(CLIP(all-zero frame)), i.e. a mid-grey image.
        ``like``: an anchor tensor whose shape (and batch) the zero frame copies; by default a
        frame at the CLIP input size (identical result: resizing a constant image keeps it)."""
        if like is None:
            encoder = self._require("image_encoder", "load an OpenCLIP image encoder for the grey anchor.")
            size = encoder.config.image_size
            like = torch.zeros(batch, 3, size, size)
        return self.anchor_tokens(torch.zeros_like(like, dtype=torch.float32))

    @staticmethod
    def context(text_tokens: torch.Tensor, anchor_tokens: torch.Tensor) -> torch.Tensor:
        """(B, 77, D) text || (B, 16, D) APM tokens -> (B, 93, D)."""
        if text_tokens.shape[1] != TEXT_TOKENS or anchor_tokens.shape[1] != APM_TOKENS:
            raise InputError(f"context needs {TEXT_TOKENS} text tokens and {APM_TOKENS} anchor tokens, got "
                             f"{text_tokens.shape[1]} and {anchor_tokens.shape[1]}")
        return torch.cat([text_tokens, anchor_tokens.to(text_tokens)], dim=1)

    # -- denoising -------------------------------------------------------------------------------
    def _check_inputs(self, latents: torch.Tensor, context: torch.Tensor, cam_frames: Optional[torch.Tensor]):
        if latents.ndim != 5:
            raise InputError(f"latents must be (B, C, F, h, w), got {tuple(latents.shape)}")
        b, _, f, h, w = latents.shape
        if context.ndim != 3 or context.shape[0] != b or context.shape[1] != CONTEXT_TOKENS:
            raise InputError(f"context must be (B={b}, {CONTEXT_TOKENS}, D): 77 text tokens then 16 APM anchor "
                             f"tokens (StreamingT2V.context(text, anchor_tokens)); got {tuple(context.shape)}")
        if cam_frames is None:
            return
        if cam_frames.ndim != 5 or cam_frames.shape[0] != b or cam_frames.shape[2] != 3:
            raise InputError(f"CAM frames must be (B={b}, Fc, 3, H, W) signed pixels, got {tuple(cam_frames.shape)}")
        scale = self.cam.controlnet_cond_embedding.downscale
        if cam_frames.shape[1] > f:
            raise InputError(f"{cam_frames.shape[1]} CAM frames but only {f} latent frames")
        if tuple(cam_frames.shape[-2:]) != (h * scale, w * scale):
            raise InputError(f"CAM frames are {tuple(cam_frames.shape[-2:])} pixels but the latents need "
                             f"{(h * scale, w * scale)} ({h}x{w} latent x {scale})")

    def cam_features(self, latents: torch.Tensor, timestep, context: torch.Tensor, cam_frames: torch.Tensor):
        """CAM skips and mid feature for the first Fc latent frames (text tokens only, no APM).

        Rows of the batch with equal latents, text and frames (e.g. the two empty-text passes of
        eq. 12 guidance) are computed once and shared."""
        dtype = self.cam.trunk.dtype
        latents, context, cam_frames = latents.to(dtype), context.to(dtype), cam_frames.to(dtype)
        fc = cam_frames.shape[1]
        text = context[:, :TEXT_TOKENS]
        reps, inverse = _distinct_rows(latents[:, :, :fc], text, cam_frames)
        if len(reps) == latents.shape[0]:
            return self.cam(latents, timestep, text, cam_frames)
        idx = torch.tensor(reps, device=latents.device)
        t = torch.as_tensor(timestep)
        t = t[idx.to(t.device)] if t.ndim else t
        skips, mid = self.cam(latents[idx], t, text[idx], cam_frames[idx])
        inv = torch.tensor(inverse, device=latents.device)

        def expand(x):
            x = x.reshape(len(reps), fc, *x.shape[1:])[inv]
            return x.reshape(-1, *x.shape[2:])

        return [expand(s) for s in skips], expand(mid)

    def predict_noise(self, latents: torch.Tensor, timestep, context: torch.Tensor,
                      cam_frames: Optional[torch.Tensor] = None, *, cam_features=None) -> torch.Tensor:
        """eps for ``latents`` (B, 4, F, h, w) at ``timestep`` with ``context`` (B, 93, 1024) and the
        CAM conditioning frames (B, Fc, 3, H, W) in [-1, 1] (None: no CAM branch). Returned in the
        latents' dtype; the networks run in the weights' dtype."""
        self._check_inputs(latents, context, cam_frames)
        dtype = self.dtype
        x = latents.to(self.device, dtype)
        ctx = context.to(self.device, dtype)
        if cam_features is None and cam_frames is not None:
            cam_features = self.cam_features(x, timestep, ctx, cam_frames.to(self.device))
        return self.unet(x, timestep, ctx, cam_features=cam_features).to(latents.dtype)

    # -- pixels ----------------------------------------------------------------------------------
    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor, slice_size: int = 8) -> torch.Tensor:
        """(B, 4, F, h, w) latents -> (B, F, 3, H, W) unit pixels in [0, 1] (float32)."""
        vae = self._require("vae", "load a VAE to decode latents.")
        return to_unit_range(decode_video(vae, latents, slice_size))
