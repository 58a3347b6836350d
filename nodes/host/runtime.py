"""Finding ComfyUI: the one place that decides whether we run inside it.

Everything in ``nodes/host`` asks here for ComfyUI's modules instead of importing them at the top,
so the pack imports (and its nodes run on plain PyTorch) where ComfyUI is absent: in CI, in tests,
from the CLI. Inside ComfyUI the modules are already loaded and the import is a dictionary lookup.
"""

from __future__ import annotations

import importlib
import importlib.util
from functools import lru_cache
from types import ModuleType
from typing import Optional

from ...streaming_core.errors import UserFacingError


@lru_cache(maxsize=1)
def in_comfyui() -> bool:
    """True when ComfyUI's modules can be imported (always, inside a ComfyUI process)."""
    try:
        return importlib.util.find_spec("folder_paths") is not None and importlib.util.find_spec("comfy") is not None
    except (ImportError, ValueError):
        return False


def comfy_module(name: str) -> Optional[ModuleType]:
    """ComfyUI's module ``name`` ('comfy.model_management', 'folder_paths', ...), or None outside ComfyUI.

    Errors raised while importing a module that exists are not hidden: inside ComfyUI they are bugs.
    """
    if not in_comfyui():
        return None
    return importlib.import_module(name)


def require_comfy_module(name: str, what: str) -> ModuleType:
    """Like ``comfy_module`` for features that only exist inside ComfyUI (patching a MODEL)."""
    module = comfy_module(name)
    if module is None:
        raise UserFacingError(f"{what} needs ComfyUI's '{name}', which is not importable here: run it inside ComfyUI")
    return module
