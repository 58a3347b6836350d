"""Where the pack keeps files that must outlive one queue run (the Chunk Loop's resume state).

Inside ComfyUI: a folder under its output directory (kept across restarts, unlike the temp
directory, which ComfyUI empties at start-up: a run interrupted by a crash must still resume).
Outside ComfyUI: under ``$STREAMING_OUTPUT_DIR`` (or ``./output``).
"""

from __future__ import annotations

import os
from pathlib import Path

from .runtime import comfy_module

OUTPUT_DIR_ENV = "STREAMING_OUTPUT_DIR"


def output_directory() -> Path:
    fp = comfy_module("folder_paths")
    if fp is not None:
        return Path(fp.get_output_directory())
    return Path(os.environ.get(OUTPUT_DIR_ENV) or "output")


def output_subfolder(*parts: str) -> Path:
    """``<output>/<parts...>`` (not created here)."""
    return output_directory().joinpath(*parts)
