"""The ``--device`` / ``--dtype`` options every command shares, resolved with clear errors."""

from __future__ import annotations

from typing import Optional

import torch

from ..errors import InputError
from ..models.offload import OFFLOAD_CHOICES, apply_weight_dtype, offload
from ..models.operations import WEIGHT_DTYPES

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


OFFLOAD_HELP = ("memory for small GPUs: none (everything on the device), models (each network on the device only "
                "while it runs, the others in CPU memory), layers (as models, and the UNet streamed layer by layer "
                "from CPU memory: the smallest and slowest). The output is the same")
WEIGHT_DTYPE_HELP = ("storage of the diffusion network's weights: default (the --dtype), fp8_e4m3fn or fp8_e5m2 "
                     "(half the fp16 memory; computing stays in --dtype; small quality cost)")


def add_memory_arguments(parser) -> None:
    """``--offload`` and ``--weight-dtype`` for the commands that run a diffusion network."""
    parser.add_argument("--offload", choices=OFFLOAD_CHOICES, default="none", help=OFFLOAD_HELP)
    parser.add_argument("--weight-dtype", choices=tuple(WEIGHT_DTYPES), default="default", help=WEIGHT_DTYPE_HELP)


def load_device(args, device: torch.device) -> torch.device:
    """Where to build the models: the CPU when ``--offload`` moves them later, else ``device``."""
    return torch.device("cpu") if getattr(args, "offload", "none") != "none" else device


def manage_memory(args, device: torch.device, groups: dict, denoisers: tuple[str, ...]):
    """Apply ``--weight-dtype`` to the ``denoisers`` groups and ``--offload`` to all ``groups`` (name ->
    networks that run together); returns the offload manager (None without ``--offload``)."""
    apply_weight_dtype([net for name in denoisers for net in groups.get(name, ())], args.weight_dtype)
    return offload(groups, device, args.offload, streamed=denoisers)
