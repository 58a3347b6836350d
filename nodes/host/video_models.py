"""What a native ComfyUI MODEL's latent looks like along time: which axis holds the frames and how
many pixel frames one latent frame stands for.

ComfyUI exposes no temporal-compression number on the model; the latent format class identifies
the family (it also decides channels and scaling), and each family's VAE fixes the rule. The table
follows ComfyUI 0.3.64's VAE definitions (``comfy/sd.py``: ``upscale_ratio``) and latent nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...streaming_core.errors import InputError

# Latent format class -> pixel frames per latent frame after the first. Subclasses inherit the
# rule (Wan22 is a Wan21; Cosmos Predict2 uses the Wan21 format).
TEMPORAL_COMPRESSION = {
    "Wan21": 4,
    "HunyuanVideo": 4,
    "HunyuanImage21Refiner": 4,
    "Mochi": 6,
    "LTXV": 8,
    "Cosmos1CV8x8x8": 8,
}
BATCH_AXIS, TIME_AXIS = 0, 2


@dataclass(frozen=True)
class LatentLayout:
    dim: int                            # 0: frames are the batch (image models); 2: [B, C, T, H, W]
    temporal_compression: Optional[int]  # None: a video format this table does not know
    family: str                         # the latent format's class name, for messages


def latent_layout(model) -> LatentLayout:
    """The layout of a ModelPatcher's latents, read from its latent format."""
    fmt = model.get_model_object("latent_format")
    family = type(fmt).__name__
    for cls in type(fmt).__mro__:
        if cls.__name__ in TEMPORAL_COMPRESSION:
            return LatentLayout(TIME_AXIS, TEMPORAL_COMPRESSION[cls.__name__], family)
    if getattr(fmt, "latent_dimensions", 2) == 3:
        return LatentLayout(TIME_AXIS, None, family)
    return LatentLayout(BATCH_AXIS, 1, family)


def resolve_layout(model, frame_axis: str, temporal_compression: str) -> LatentLayout:
    """Combine what the model says with the node's explicit choices ('auto' defers to the model)."""
    detected = latent_layout(model)
    dim = {"auto": detected.dim, "time": TIME_AXIS, "batch": BATCH_AXIS}.get(frame_axis)
    if dim is None:
        raise InputError(f"unknown frame_axis {frame_axis!r}: choose auto, time or batch")
    if temporal_compression == "auto":
        ratio = detected.temporal_compression if dim == detected.dim else 1
        if ratio is None:
            raise InputError(
                f"this model's latent format ({detected.family}) does not say how many frames a latent frame "
                "holds: set temporal_compression by hand (4x for Wan/Hunyuan-style VAEs, 8x for LTXV-style)")
    else:
        try:
            ratio = int(str(temporal_compression).rstrip("x"))
        except ValueError:
            raise InputError(f"unknown temporal_compression {temporal_compression!r}: choose auto, 1x, 4x, 6x or 8x") from None
    return LatentLayout(dim, ratio, detected.family)
