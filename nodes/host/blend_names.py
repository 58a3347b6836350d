"""The blend choices of the Randomized Blend MODEL node, without ComfyUI: node schemas and tests list
them, and the context handler (``context_handler.py``, inside ComfyUI only) dispatches on them."""

from __future__ import annotations

# Node choice -> the core's hard-cut mode.
HARD_CUTS = {"randomized": "randomized", "hard_cut_middle": "middle"}
# ComfyUI 0.3.64's own weighted fuses (comfy.context_windows.ContextFuseMethods.LIST_STATIC).
NATIVE_FUSES = ("pyramid", "relative", "flat", "overlap-linear")
BLEND_CHOICES = tuple(HARD_CUTS) + NATIVE_FUSES
