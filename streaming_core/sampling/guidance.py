"""Classifier-free guidance combinations as pure functions over model outputs.

- ``cfg``: the official StreamingT2V joint scale (text and anchor together against empty text + the
  grey-image anchor tokens) and MS-Vid2Vid-XL's CFG.
- ``text_anchor_guidance``: the paper's eq. 12 with separate text and anchor scales.
- ``rescale_guidance``: MS-Vid2Vid-XL's guidance rescale (std ratio per sample).
"""

from __future__ import annotations

import torch


def cfg(uncond: torch.Tensor, cond: torch.Tensor, scale: float) -> torch.Tensor:
    return uncond + scale * (cond - uncond)


def text_anchor_guidance(e_null: torch.Tensor, e_anchor: torch.Tensor, e_full: torch.Tensor,
                         w_text: float, w_anchor: float) -> torch.Tensor:
    """Eq. 12: e(∅,∅) + w_text (e(τ,a) − e(∅,a)) + w_anchor (e(∅,a) − e(∅,∅)).

    With w_text == w_anchor == w it telescopes to ``cfg(e_null, e_full, w)``, so the joint form
    needs only the two passes (∅,∅) and (τ,a).
    """
    return e_null + w_text * (e_full - e_anchor) + w_anchor * (e_anchor - e_null)


def rescale_guidance(guided: torch.Tensor, cond: torch.Tensor, phi: float, eps: float = 1e-12) -> torch.Tensor:
    """out * (phi * std(cond)/(std(out) + eps) + 1 - phi), std over all elements of each sample
    (MS-Vid2Vid-XL adds eps = 1e-12 to the denominator)."""
    if phi == 0:
        return guided
    dims = tuple(range(1, guided.ndim))
    ratio = cond.std(dim=dims, keepdim=True) / (guided.std(dim=dims, keepdim=True) + eps)
    return guided * (phi * ratio + (1 - phi))
