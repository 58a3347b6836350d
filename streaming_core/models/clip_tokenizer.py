"""CLIP BPE tokenisation from package data (open_clip ships the vocabulary): never from a hub.

Produces what the SD 2.x-style ``CLIPTokenizer`` of text-to-video-ms-1.7b gives with
``padding="max_length", truncation=True, max_length=77``: start token 49406, the BPE ids, end token
49407, padded with id 0 (that tokenizer's pad token "!" is id 0); over-long prompts are cut to 77 with
the end token kept last. Text cleaning is open_clip's (ftfy, html unescape, whitespace, lower case),
which equals the HF tokenizer's for ordinary prompts.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Sequence

import torch

START_TOKEN = 49406
END_TOKEN = 49407
PAD_TOKEN = 0
CONTEXT_LENGTH = 77
VOCAB_SIZE = 49408


@lru_cache(maxsize=1)
def _bpe():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(prompts: str | Sequence[str], context_length: int = CONTEXT_LENGTH) -> torch.Tensor:
    """(B, 77) int64 token ids."""
    if isinstance(prompts, str):
        prompts = [prompts]
    bpe = _bpe()
    ids = torch.full((len(prompts), context_length), PAD_TOKEN, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise TypeError(f"prompts must be strings, got {type(prompt).__name__}")
        tokens = [START_TOKEN] + bpe.encode(prompt)[: context_length - 2] + [END_TOKEN]
        ids[row, : len(tokens)] = torch.tensor(tokens)
    return ids
