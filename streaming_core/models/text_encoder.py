"""The prompt encoder: transformers' ``CLIPTextModel`` (OpenCLIP ViT-H text tower in HF layout).

Its config is inferred from tensor shapes, never fetched. The official model is the
text-to-video-ms-1.7b text encoder: width 1024, 23 layers (SD 2's "penultimate layer" cut), exact
GELU, final LayerNorm applied, and its full ``last_hidden_state`` (77 x 1024) is the text context.

transformers 5 dropped the ``text_model`` level of ``CLIPTextModel``; ``CLIPTextEncoder`` puts the
transformer under ``text_model`` itself so the official ``text_encoder.text_model.*`` keys load
unchanged with either major version.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from ..errors import CheckpointError
from .clip_tokenizer import VOCAB_SIZE, tokenize
from .operations import execution_device, execution_dtype

TEXT_HEAD_DIM = 64  # OpenCLIP / SD text towers: heads = width // 64 (1024 -> 16)


def text_config_from_state_dict(sd: Mapping[str, torch.Tensor], prefix: str = "text_model."):
    """A ``CLIPTextConfig`` from the shapes under ``prefix`` (e.g. ``text_encoder.text_model.``)."""
    from transformers import CLIPTextConfig

    vocab, hidden = sd[prefix + "embeddings.token_embedding.weight"].shape
    layers = 0
    while prefix + f"encoder.layers.{layers}.layer_norm1.weight" in sd:
        layers += 1
    return CLIPTextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=sd[prefix + "encoder.layers.0.mlp.fc1.weight"].shape[0],
        num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // TEXT_HEAD_DIM),
        max_position_embeddings=sd[prefix + "embeddings.position_embedding.weight"].shape[0],
        hidden_act="gelu",
        layer_norm_eps=1e-5,
        projection_dim=512,
        # the SD 2 / text-to-video-ms-1.7b text encoder config's legacy ids (only the unused pooler reads eos)
        bos_token_id=0,
        eos_token_id=2,
        pad_token_id=1,
        attn_implementation="sdpa",
    )


class CLIPTextEncoder(nn.Module):
    """Prompts -> (B, 77, width) context; no attention mask, as the official pipeline calls it."""

    def __init__(self, config):
        super().__init__()
        from transformers import CLIPTextModel

        hf = CLIPTextModel(config)
        self.text_model = getattr(hf, "text_model", hf)  # transformers 4 nests it, 5 does not
        self.config = config

    @property
    def dtype(self) -> torch.dtype:
        return execution_dtype(self)

    @property
    def device(self) -> torch.device:
        return execution_device(self)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        vocab = self.config.vocab_size
        if int(input_ids.max()) >= vocab:
            raise CheckpointError(
                f"token id {int(input_ids.max())} is outside this text encoder's vocabulary of {vocab} "
                f"(the CLIP tokenizer needs {VOCAB_SIZE}): the text encoder weights do not belong to a CLIP text model."
            )
        return self.text_model(input_ids=input_ids.to(self.device)).last_hidden_state

    def encode(self, prompts: str | Sequence[str]) -> torch.Tensor:
        return self(tokenize(prompts))
