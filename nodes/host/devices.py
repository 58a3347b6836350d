"""Devices and dtypes the way ComfyUI chooses them, with plain fallbacks outside ComfyUI.

Roles follow ComfyUI's three kinds of model, each with its own devices and dtype rule:
'diffusion' (unet_dtype, get_torch_device / unet_offload_device), 'vae' (vae_dtype, vae_device /
vae_offload_device), 'text_encoder' (text_encoder_dtype, text_encoder_device /
text_encoder_offload_device).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch

from ...streaming_core.errors import InputError
from .runtime import comfy_module

ROLES = ("diffusion", "vae", "text_encoder")
DTYPE_CHOICES = ("auto", "fp16", "bf16", "fp32")
_EXPLICIT = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
_ALL_FLOATS = (torch.float16, torch.bfloat16, torch.float32)

_LOAD = {"diffusion": "get_torch_device", "vae": "vae_device", "text_encoder": "text_encoder_device"}
_OFFLOAD = {"diffusion": "unet_offload_device", "vae": "vae_offload_device",
            "text_encoder": "text_encoder_offload_device"}


def _mm():
    return comfy_module("comfy.model_management")


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown model role {role!r}; one of {ROLES}")


def torch_device() -> torch.device:
    """Where models compute: ComfyUI's choice (honours --cpu, --directml, ...); CPU outside ComfyUI."""
    mm = _mm()
    return mm.get_torch_device() if mm else torch.device("cpu")


def load_device(role: str = "diffusion") -> torch.device:
    _check_role(role)
    mm = _mm()
    return getattr(mm, _LOAD[role])() if mm else torch.device("cpu")


def offload_device(role: str = "diffusion") -> torch.device:
    """Where a model waits between uses; loaders build modules here."""
    _check_role(role)
    mm = _mm()
    return getattr(mm, _OFFLOAD[role])() if mm else torch.device("cpu")


def intermediate_device() -> torch.device:
    """Where node outputs live (CPU unless --gpu-only), so the next node decides where to compute."""
    mm = _mm()
    return mm.intermediate_device() if mm else torch.device("cpu")


def pick_dtype(choice: str = "auto", role: str = "diffusion", device: Optional[torch.device] = None,
               supported: Sequence[torch.dtype] = _ALL_FLOATS, params: int = 0) -> torch.dtype:
    """The compute dtype for a model: an explicit 'fp16'/'bf16'/'fp32' wins; 'auto' asks ComfyUI.

    'auto' on a CPU is fp32: our modules are plain PyTorch without ComfyUI's casting layers, and
    ComfyUI's text-encoder rule returns fp16 even on a CPU, where it relies on those layers. ComfyUI
    may also answer with a dtype the model cannot compute in (fp8 under --fp8_e4m3fn-unet); then the
    first supported half dtype the device can use is taken, else fp32.
    """
    _check_role(role)
    if choice in _EXPLICIT:
        return _EXPLICIT[choice]
    if choice != "auto":
        raise InputError(f"unknown dtype {choice!r}: choose one of {DTYPE_CHOICES}")
    mm = _mm()
    device = torch.device(device) if device is not None else load_device(role)
    if mm is None or device.type == "cpu":
        return torch.float32
    supported = list(supported)
    if role == "diffusion":
        dtype = mm.unet_dtype(device=device, model_params=params, supported_dtypes=supported)
    elif role == "vae":
        dtype = mm.vae_dtype(device=device, allowed_dtypes=supported)
    else:
        dtype = mm.text_encoder_dtype(device)
    if dtype in supported:
        return dtype
    for half in (torch.float16, torch.bfloat16):
        if half in supported and mm.supports_dtype(device, half):
            return half
    return torch.float32
