"""Model memory management through ComfyUI's ModelPatcher and load_models_gpu.

Every model a node holds is wrapped here, so ComfyUI can offload it when another model needs the
GPU and load it back right before our node runs. Two facts of ComfyUI 0.3.64 shape this module:

* ModelPatcher writes bookkeeping attributes (``device``, ``model_lowvram``, ...) onto the module it
  manages, and our core models expose ``device`` as a read-only property. The core model is
  therefore held by a small ``HostedModel`` container that ComfyUI may annotate freely.
* Partial (low-VRAM) loading keeps some layers' weights on the CPU and only works for layers built
  from ``comfy.ops`` (they fetch their weights at call time). ``wrap_model`` therefore gives every
  plain ``torch.nn`` layer of the core model ComfyUI's class of the same name (the core's operations
  injection, ``streaming_core.models.operations``): ``disable_weight_init`` for weights kept in the load
  dtype, ``manual_cast`` for fp8 storage. After ``load_models_gpu`` the few tensors outside those
  layers (attention gates, positional embeddings, RAFT's batch norms, buffers), which ComfyUI's partial
  load leaves where they are, are moved to the load device, and the model is told where it computes
  (its first weight may still be on the CPU).
"""

from __future__ import annotations

from typing import Iterable, Optional

import torch

from ...streaming_core.models.operations import (CAST_OPS, TORCH_OPS, move_tensors, parse_weight_dtype,
                                                  set_execution_device, store_weights, use_operations)
from .devices import load_device, offload_device
from .runtime import comfy_module

WEIGHT_DTYPE_CHOICES = ("default", "fp8_e4m3fn", "fp8_e5m2")  # ComfyUI's UNETLoader names


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


def manageable_layers(core: torch.nn.Module, weight_dtype: str = "default",
                      fp8_parts: Optional[Iterable[torch.nn.Module]] = None) -> torch.nn.Module:
    """Give ``core``'s layers ComfyUI's operations (or the core's cast-capable ones outside ComfyUI) and
    store the weights of ``fp8_parts`` (default: all of ``core``) in ``weight_dtype``; in place.

    ``weight_dtype``: "default" (the load dtype) or an fp8 format; computing stays in the load dtype.
    """
    storage = parse_weight_dtype(weight_dtype)
    ops_module = comfy_module("comfy.ops")
    if ops_module is not None:
        ops = ops_module.manual_cast if storage is not None else ops_module.disable_weight_init
    else:
        ops = CAST_OPS if storage is not None else TORCH_OPS
    use_operations(core, ops)
    for part in (fp8_parts if fp8_parts is not None else [core]):
        store_weights(part, storage)
    return core


def wrap_model(core: torch.nn.Module, role: str = "diffusion", load_device_: Optional[torch.device] = None,
               offload_device_: Optional[torch.device] = None, weight_dtype: str = "default",
               fp8_parts: Optional[Iterable[torch.nn.Module]] = None):
    """A patcher for ``core`` (build ``core`` on ``offload_device(role)``; it is not moved here), with
    layers ComfyUI can load partially (see ``manageable_layers``)."""
    manageable_layers(core, weight_dtype, fp8_parts)
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
        mm.load_models_gpu(patchers, memory_required=int(memory_required))
        for patcher in patchers:
            place_outside_layers(patcher)
    else:
        for patcher in patchers:
            patcher.model.to(patcher.load_device)
            set_execution_device(patcher.model, patcher.load_device)
    return [core_model(p) for p in patchers]


def place_outside_layers(patcher) -> int:
    """After a (possibly partial) load: every tensor not owned by a ComfyUI layer goes to the load device,
    and the model computes there. Returns the bytes moved."""
    moved = move_tensors(patcher.model, patcher.load_device, include=lambda m: not hasattr(m, "comfy_cast_weights"))
    set_execution_device(patcher.model, patcher.load_device)
    return moved
