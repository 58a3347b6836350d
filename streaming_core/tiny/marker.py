"""How tiny test weights are recognised when they are used: by the loaded models' parameter count (the
real ones have hundreds of millions to billions, the tiny ones well under 0.1 B), and ``make-tiny``
leaves a marker file at the root of the tree it writes that says where they came from.

The commands say "tiny test weights" when they run on such files, so a noise video (or a canvas chosen
for speed) is never mistaken for what the real models make.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Optional

import torch

MARKER = "TINY_TEST_WEIGHTS.txt"
MARKER_TEXT = ("This models folder was written by `python -m streaming_core make-tiny`: tiny models with RANDOM\n"
               "weights under the real folder and file names, for tests and pipeline demos. Their videos are noise.\n")
# The real models all have hundreds of millions of parameters or more (StreamingT2V ~3.4 B, the ModelScope
# UNet 1.4 B, MS-Vid2Vid-XL ~2 B, Stream-DiffVSR's parts ~0.7 B together); the tiny ones well under 0.1 B.
TEST_SIZED_PARAMETERS = 300_000_000
_LEVELS = 5  # how far above a weight file its tree's root may be (stream_diffvsr/NAME/unet/FILE: 3)


def write_marker(models_dir: str | os.PathLike) -> Path:
    path = Path(models_dir) / MARKER
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(MARKER_TEXT)
    return path


def tiny_tree_of(path: str | os.PathLike) -> Optional[Path]:
    """The make-tiny tree ``path`` (a weight file or folder) lies in, or None."""
    here = Path(path).resolve()
    for folder in ([here] if here.is_dir() else []) + list(here.parents)[:_LEVELS]:
        if (folder / MARKER).is_file():
            return folder
    return None


def parameter_count(*modules) -> int:
    """Parameters of every torch module among ``modules`` and their direct attributes (bundles like the
    enhancer or Stream-DiffVSR hold their networks as attributes)."""
    seen, total = set(), 0

    def add(module) -> None:
        nonlocal total
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()

    for m in modules:
        if isinstance(m, torch.nn.Module):
            add(m)
        elif m is not None:
            for value in vars(m).values() if hasattr(m, "__dict__") else ():
                if isinstance(value, torch.nn.Module):
                    add(value)
    return total


def tiny_weights_note(paths: Iterable[Optional[str | os.PathLike]], *modules) -> Optional[str]:
    """A one-line note when the loaded ``modules`` (read from ``paths``) are tiny test weights, else None.

    Decided by their parameter count, so real weights put into a folder that also holds make-tiny's
    marker are never called test weights; the marker only says where the tiny files came from."""
    count = parameter_count(*modules)
    if not 0 < count < TEST_SIZED_PARAMETERS:
        return None
    root = next((r for r in (tiny_tree_of(p) for p in paths if p is not None) if r is not None), None)
    where = f"written by make-tiny in {root}" if root else "by their size"
    return (f"tiny test weights ({where}; {count / 1e6:.1f} M parameters, the real models have billions): "
            "the output is noise, not a trained model's video")
