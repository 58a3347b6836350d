"""Patching a native ComfyUI MODEL with randomized blending over context windows.

The blend names are defined here, without ComfyUI, so node schemas and tests can list them; the
handler itself (``context_handler``) subclasses ComfyUI's and is imported only when a model is
patched, i.e. inside ComfyUI.
"""

from __future__ import annotations

from .runtime import require_comfy_module

# Node choice -> the core's hard-cut mode.
HARD_CUTS = {"randomized": "randomized", "hard_cut_middle": "middle"}
# ComfyUI 0.3.64's own weighted fuses (comfy.context_windows.ContextFuseMethods.LIST_STATIC).
NATIVE_FUSES = ("pyramid", "relative", "flat", "overlap-linear")
BLEND_CHOICES = tuple(HARD_CUTS) + NATIVE_FUSES


def patch_model_with_blend(model, blend: str, context_length: int, context_overlap: int, dim: int, seed: int):
    """A clone of ``model`` that runs every model call per window (lengths in latent frames along
    ``dim``) and fuses the windows with ``blend``."""
    require_comfy_module("comfy.context_windows", "Blending a MODEL over context windows")
    from .context_handler import patch_model

    return patch_model(model, blend, context_length, context_overlap, dim, seed)
