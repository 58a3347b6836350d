"""Model memory management through ComfyUI's ModelPatcher and load_models_gpu.

Every model a node holds is wrapped here, so ComfyUI can offload it when another model needs the
GPU and load it back right before our node runs. Two facts of ComfyUI 0.3.64 shape this module:

* ModelPatcher writes bookkeeping attributes (``device``, ``model_lowvram``, ...) onto the module it
  manages, and our core models expose ``device`` as a read-only property. The core model is
  therefore held by a small ``HostedModel`` container that ComfyUI may annotate freely.
* Partial (low-VRAM) loading only moves layers built from ``comfy.ops``; plain PyTorch layers left
  behind would stay on the CPU and fail at compute time, and modules holding only buffers are never
  moved. Our models are plain PyTorch, so they are always loaded whole (``force_full_load``); ComfyUI
  still frees memory for them by offloading other models first.
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from .devices import load_device, offload_device
from .runtime import comfy_module


class HostedModel(torch.nn.Module):
    """The module ComfyUI manages; ``core`` is our model, untouched."""

    def __init__(self, core: torch.nn.Module):
        super().__init__()
        self.core = core

    def forward(self, *args, **kwargs):
        return self.core(*args, **kwargs)


class PlainPatcher:
    """Stand-in for ModelPatcher outside ComfyUI: the same ``model`` / ``load_device`` /
    ``offload_device`` attributes, so node code is the same in tests."""

    def __init__(self, model: HostedModel, load_device: torch.device, offload_device: torch.device):
        self.model = model
        self.load_device = torch.device(load_device)
        self.offload_device = torch.device(offload_device)

    def model_size(self) -> int:
        return sum(t.numel() * t.element_size() for t in list(self.model.parameters()) + list(self.model.buffers()))


def wrap_model(core: torch.nn.Module, role: str = "diffusion", load_device_: Optional[torch.device] = None,
               offload_device_: Optional[torch.device] = None):
    """A patcher for ``core`` (build ``core`` on ``offload_device(role)``; it is not moved here)."""
    hosted = HostedModel(core)
    load_to = load_device_ if load_device_ is not None else load_device(role)
    offload_to = offload_device_ if offload_device_ is not None else offload_device(role)
    patcher_module = comfy_module("comfy.model_patcher")
    if patcher_module is None:
        return PlainPatcher(hosted, load_to, offload_to)
    return patcher_module.ModelPatcher(hosted, load_device=load_to, offload_device=offload_to)


def core_model(patcher) -> torch.nn.Module:
    """Our model inside a patcher made by ``wrap_model``."""
    return patcher.model.core


def load_for_use(patchers: Iterable, memory_required: int = 0) -> list[torch.nn.Module]:
    """Put the models on their load device right before use; returns the core models in order.

    ``memory_required``: bytes the computation itself needs beside the weights (activations of one
    chunk), so ComfyUI frees that much too.
    """
    patchers = list(patchers)
    mm = comfy_module("comfy.model_management")
    if mm is not None:
        mm.load_models_gpu(patchers, memory_required=memory_required, force_full_load=True)
    else:
        for patcher in patchers:
            patcher.model.to(patcher.load_device)
    return [core_model(p) for p in patchers]
