"""Streaming Long Video for ComfyUI: StreamingT2V and Stream-DiffVSR nodes.

ComfyUI loads this folder as a package (any folder name, dashes included); every import below is
relative, and nothing here needs ComfyUI to import.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from .nodes.host import register_model_folders

register_model_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
