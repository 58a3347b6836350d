"""StreamingT2V and Stream-DiffVSR as a plain PyTorch library.

Nothing here imports ComfyUI: the ComfyUI nodes in ``nodes/`` are thin adapters over this package,
and everything can be used (and tested) from Python or the ``python -m streaming_core`` CLI.
"""

__version__ = "0.1.0"
