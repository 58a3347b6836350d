"""CLIP score: the mean cosine similarity between the prompt and every frame, in OpenCLIP's space.

Image side: the pack's OpenCLIP visual tower (``OpenCLIPImageEncoder``, read from a clip_vision file,
an open_clip file or the StreamingT2V checkpoint), fed with open_clip's evaluation preprocessing:
bicubic resize of the short side to the tower's input size (224), centre crop, CLIP mean/std. The
APM anchor path squashes the frame to a square instead; for scoring, the standard CLIP transform is
the one papers use.

Text side: open_clip's full text tower (every layer, ``ln_final``, the end-of-text token's state
times ``text_projection``), built as transformers' ``CLIPTextModel`` like the pack's prompt encoders
(``CLIPTextEncoder``) plus the projection. The result is the open_clip ``encode_text`` embedding.

Both towers must come from the same CLIP model (laion2b_s32b_b79k ViT-H/14 for the pack's files):
scores between towers of different trainings are meaningless, and a width mismatch is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.transforms.functional import InterpolationMode, center_crop, normalize, resize

from ..errors import CheckpointError, InputError
from ..models.clip_image import CLIP_MEAN, CLIP_STD
from ..models.clip_tokenizer import tokenize

FRAME_BATCH = 16


class ClipTextTower(nn.Module):
    """Prompt -> open_clip's projected text embedding (B, embed_dim)."""

    def __init__(self, encoder: nn.Module, projection: torch.Tensor):
        super().__init__()
        self.encoder = encoder  # models.text_encoder.CLIPTextEncoder with every layer
        self.projection = nn.Parameter(projection, requires_grad=False)  # (width, embed_dim), open_clip's matrix

    @property
    def embed_dim(self) -> int:
        return int(self.projection.shape[1])

    @torch.no_grad()
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids)  # final LayerNorm applied
        ids = input_ids.to(hidden.device)
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), ids.argmax(dim=-1)]
        return pooled.to(self.projection.dtype) @ self.projection

    def encode(self, prompts: str | list[str]) -> torch.Tensor:
        return self(tokenize(prompts))


def clip_image_input(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(B, H, W, 3) float 0..1 -> (B, 3, size, size): open_clip's eval transform (short side bicubic
    resize with antialiasing, centre crop, values clamped to 0..1 as an 8-bit image would, CLIP mean/std)."""
    x = frames[..., :3].permute(0, 3, 1, 2).float()
    x = resize(x, [size], interpolation=InterpolationMode.BICUBIC, antialias=True)
    x = center_crop(x, [size, size]).clamp(0, 1)
    return normalize(x, CLIP_MEAN, CLIP_STD)


@dataclass(frozen=True)
class ClipScore:
    per_frame: tuple[float, ...]  # cosine similarity of each frame with the prompt

    @property
    def score(self) -> float:
        return sum(self.per_frame) / len(self.per_frame)


def _batches(frames: Iterable[torch.Tensor], size: int) -> Iterator[torch.Tensor]:
    batch = []
    for frame in frames:
        if frame.dtype == torch.uint8:
            frame = frame.float() / 255.0
        batch.append(frame)
        if len(batch) == size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


@torch.no_grad()
def clip_score(frames: Iterable[torch.Tensor], prompt: str, image_encoder, text_tower: ClipTextTower,
               batch: int = FRAME_BATCH, on_frames: Optional[Callable[[int], None]] = None) -> ClipScore:
    """Per-frame cosine between ``prompt`` and each (H, W, 3) frame (uint8 or float 0..1); streamed in batches.
    ``on_frames(frames_done)`` after each batch (progress; raise in it to stop)."""
    if not prompt or not prompt.strip():
        raise InputError("the CLIP score needs the prompt the video was made from: pass --prompt TEXT")
    visual = image_encoder.model.visual
    out_dim = image_encoder.config.output_dim
    if out_dim != text_tower.embed_dim:
        raise CheckpointError(f"the CLIP image tower gives {out_dim}-d embeddings but the text tower "
                              f"{text_tower.embed_dim}-d: they are not the two halves of one CLIP model. Use the "
                              f"OpenCLIP ViT-H/14 files for both.")
    text = F.normalize(text_tower.encode(prompt).float(), dim=-1)
    param = next(visual.parameters())
    scores = []
    for chunk in _batches(frames, batch):
        pixels = clip_image_input(chunk, image_encoder.config.image_size).to(param.device, param.dtype)
        emb = F.normalize(visual(pixels).float(), dim=-1)
        scores.extend((emb @ text.to(emb.device).T)[:, 0].tolist())
        if on_frames is not None:
            on_frames(len(scores))
    if not scores:
        raise InputError("the CLIP score needs at least one frame")
    return ClipScore(tuple(scores))
