"""Parity case (d) of shared/fixtures/st2v_parity, run through the Chunk Loop itself.

The official run extended a 16-frame chunk by one CAM chunk with 3 DDIM steps, drawing the initial
latents and every variance noise from one CPU generator seeded 33. That is what the loop does with
``rng="official"`` and seed 33, so ``extend_video`` on the fixture's model must reproduce the
official final latents (the extension step is the core's ``pipelines.extend.extend_chunk``; here it
is reached only through the loop). The fixture bypasses the text encoder and replaces the ViT-H tower
by a lookup of recorded CLIP embeddings; the same substitutions are made here.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from streaming_core.models.clip_image import clip_preprocess
from streaming_core.pipelines import extend as extend_module
from streaming_core.pipelines.long_video import ExtensionSettings, extend_video


class ClipLookup(nn.Module):
    """Returns the recorded embedding of the grey (all-zero) frame or of the anchor, after our real
    CLIP preprocessing, as the fixture's stand-in for ViT-H did."""

    def __init__(self, anchor: torch.Tensor, grey: torch.Tensor, size: int):
        super().__init__()
        self.anchor, self.grey = anchor.reshape(-1), grey.reshape(-1)
        self.config = SimpleNamespace(image_size=size)
        self.probe = nn.Parameter(torch.zeros(()), requires_grad=False)
        self.size = size

    def forward(self, pixels):
        x = clip_preprocess(pixels, self.size)
        grey = clip_preprocess(torch.zeros_like(pixels[:1]), self.size)[0]
        return torch.stack([self.grey if torch.allclose(row, grey, atol=1e-6) else self.anchor for row in x])


@pytest.fixture(scope="module")
def fixture(shared_dir):
    from safetensors.torch import load_file

    from streaming_core.checkpoints.files import load_state_dict
    from streaming_core.checkpoints.st2v import build_streamingt2v

    root = shared_dir / "fixtures" / "st2v_parity"
    if not (root / "weights.safetensors").is_file():
        pytest.fail(f"parity fixture missing at {root}")
    model = build_streamingt2v(load_state_dict(root / "weights.safetensors"), components=("unet", "cam", "resampler"),
                               dtype=torch.float32)
    return model, load_file(str(root / "io.safetensors"))


def test_case_d_through_the_chunk_loop(fixture, monkeypatch):
    model, io = fixture
    size = 224
    model.image_encoder = ClipLookup(io["in_clip_embed_anchor"], io["in_clip_embed_grey"], size)
    tokens = {"": io["in_text_embeds_uncond"], "the fixture's prompt": io["in_text_embeds_cond"]}
    monkeypatch.setattr(model, "encode_prompts", lambda prompts: torch.cat([tokens[p] for p in prompts]),
                        raising=False)
    monkeypatch.setattr(model, "decode_latents",  # no VAE in the fixture: frames do not matter here
                        lambda z, slice_size=8: torch.zeros(z.shape[0], z.shape[2], 3, z.shape[3] * 8, z.shape[4] * 8),
                        raising=False)
    latents = []
    real = extend_module.extend_chunk
    monkeypatch.setattr(extend_module, "extend_chunk", lambda *a, **k: latents.append(real(*a, **k)) or latents[-1])

    prev = io["in_prev_chunk_pixels"][0]  # (16, 3, H, W) signed
    video = ((prev + 1) / 2).permute(0, 2, 3, 1)  # as an IMAGE batch
    settings = ExtensionSettings(["the fixture's prompt"], seed=33, steps=3, eta=1.0, guidance=7.5, rng="official")
    out = extend_video(model, video, 24, settings)
    model.image_encoder = None

    assert out.shape[0] == 24 and len(latents) == 1
    ours, ref = latents[0], io["out_d_final_latents"]
    assert ours.shape == ref.shape
    scaled = ((ours - ref).abs() / (1 + ref.abs())).max().item()
    rel_l2 = ((ours - ref).norm() / ref.norm()).item()
    assert scaled <= 1e-3 and rel_l2 <= 2e-4, (scaled, rel_l2)
