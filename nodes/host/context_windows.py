"""Patching a native ComfyUI MODEL with randomized blending over context windows.

The blend names (``blend_names.py``) need no ComfyUI, so node schemas and tests can list them; the
handler itself (``context_handler``) subclasses ComfyUI's and is imported only when a model is
patched, i.e. inside ComfyUI.
"""

from __future__ import annotations

from .blend_names import BLEND_CHOICES, NATIVE_FUSES  # noqa: F401 (host API: node schemas, ComfyUI checks)
from .runtime import require_comfy_module


def patch_model_with_blend(model, blend: str, context_length: int, context_overlap: int, dim: int, seed: int):
    """A clone of ``model`` that runs every model call per window (lengths in latent frames along
    ``dim``) and fuses the windows with ``blend``."""
    require_comfy_module("comfy.context_windows", "Blending a MODEL over context windows")
    from .context_handler import patch_model  # imports ComfyUI (comfy.context_windows): only inside ComfyUI

    return patch_model(model, blend, context_length, context_overlap, dim, seed)
