"""The text conditioning: CLIP's encoding of the empty prompt, computed once from the real weights.

The official pipeline always prompts with "" and no classifier-free guidance, so the conditioning
is one constant (1, 77, 1024) tensor; it is computed at load time and the 1.4 GB text encoder is
then dropped. It must come from the weights: an all-zero embedding (what an earlier ComfyUI port
used) is a different conditioning that the UNet was never trained on.
"""

from __future__ import annotations

from typing import Callable

import torch
from ..operations import execution_device

PROMPT_LENGTH = 77

# text -> (1, 77) token ids, padded as the pipeline's tokenizer pads (SD2 family: pad "!" = id 0)
Tokenize = Callable[[str], torch.Tensor]


@torch.no_grad()
def encode_prompt(text_encoder, tokenize: Tokenize, prompt: str = "") -> torch.Tensor:
    """``last_hidden_state`` of the prompt (after the final layer norm), no attention mask, float32."""
    ids = tokenize(prompt).to(execution_device(text_encoder))
    if tuple(ids.shape) != (1, PROMPT_LENGTH):
        raise ValueError(f"the tokenizer returned ids of shape {tuple(ids.shape)}, expected (1, {PROMPT_LENGTH})")
    return text_encoder(input_ids=ids).last_hidden_state.float()
