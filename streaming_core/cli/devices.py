"""The ``--device`` / ``--dtype`` options every command shares, resolved with clear errors."""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(name: Optional[str]) -> torch.device:
    """The named device (default: cuda when PyTorch sees one, else cpu)."""
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"--device {name!r} is not a device name (e.g. cuda, cuda:1, cpu)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {name} asked for, but PyTorch sees no CUDA GPU here; use --device cpu.")
    return device


def pick_dtype(name: Optional[str], device: torch.device) -> torch.dtype:
    """``fp32``/``fp16``/``bf16``, or (``auto``/None) fp16 on a GPU and fp32 elsewhere."""
    if name in (None, "auto"):
        return torch.float16 if device.type == "cuda" else torch.float32
    return DTYPES[name]
