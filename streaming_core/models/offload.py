"""Memory management outside ComfyUI (the CLI's ``--offload`` and ``--weight-dtype``).

Why: ComfyUI moves models between the CPU and the GPU itself (ModelPatcher); the CLI runs a whole
pipeline with one call, so it needs its own, for cards too small to hold every network at once:

* ``models``: every network stays on the CPU until one of its modules is called; then it moves to
  the compute device and the network used before goes back to the CPU (one resident at a time).
* ``layers``: as ``models`` for the small networks, and the denoisers (the UNets: most of the
  weights) are streamed layer by layer: their layers become cast-capable (``CAST_OPS``), their weights
  stay in (pinned) CPU memory and are copied to the device for each call, and only the small tensors
  outside those layers live on the device. Slowest, smallest.

Both give the same numbers as keeping everything on the device (the same kernels run on the same
values); ``apply_weight_dtype`` stores the denoisers' weights in fp8 and computes in the load dtype.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import torch
from torch import nn

from ..errors import InputError
from .operations import (CAST_OPS, layer_modules, move_tensors, parse_weight_dtype, set_execution_device,
                         store_weights, use_operations)

OFFLOAD_CHOICES = ("none", "models", "layers")
CPU = torch.device("cpu")


def check_offload(mode: str) -> str:
    if mode not in OFFLOAD_CHOICES:
        raise InputError(f"unknown offload mode {mode!r}: use one of {', '.join(OFFLOAD_CHOICES)}")
    return mode


def apply_weight_dtype(networks: Sequence[nn.Module], weight_dtype: str) -> int:
    """Store the weights of ``networks`` (the denoisers) as ``weight_dtype`` ("default": unchanged, or an
    fp8 format), computing in their load dtype; returns bytes saved."""
    storage = parse_weight_dtype(weight_dtype)
    if storage is None:
        return 0
    saved = 0
    for net in networks:
        use_operations(net, CAST_OPS)
        saved += store_weights(net, storage)
    return saved


class OneResident:
    """Networks that take turns on the device: calling any module of one brings it there (and sends the
    one used before back to the CPU)."""

    def __init__(self, device: torch.device):
        self.device = torch.device(device)
        self.resident: Optional[int] = None
        self.groups: list[list[nn.Module]] = []
        self.handles = []

    def add(self, group: Sequence[nn.Module]) -> None:
        index = len(self.groups)
        self.groups.append(list(group))
        for net in group:
            set_execution_device(net, self.device)
            for module in net.modules():
                self.handles.append(module.register_forward_pre_hook(lambda *_, i=index: self.bring(i)))

    def bring(self, index: int) -> None:
        if self.resident == index:
            return
        if self.resident is not None:
            for net in self.groups[self.resident]:
                _place(net, CPU)
        for net in self.groups[index]:
            _place(net, self.device)
        self.resident = index

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()


def _is_streamed_layer(module: nn.Module) -> bool:
    return module.__dict__.get("_streamed", False)


def _place(net: nn.Module, device: torch.device) -> None:
    """Move ``net``, except the weights of its streamed layers (they stay on the CPU)."""
    move_tensors(net, device, include=lambda m: not _is_streamed_layer(m))


def stream_layers(net: nn.Module, device: torch.device) -> None:
    """Keep ``net``'s layer weights in CPU memory (pinned for fast copies when CUDA is there), cast to
    ``device`` at each call; everything else of ``net`` lives on ``device``."""
    device = torch.device(device)
    use_operations(net, CAST_OPS)
    for layer in layer_modules(net):
        layer.__dict__["_streamed"] = True
        for name, param in list(layer._parameters.items()):
            if param is None:
                continue
            data = param.data.to(CPU)
            if device.type == "cuda":
                data = data.pin_memory()
            param.data = data
    move_tensors(net, device, include=lambda m: not _is_streamed_layer(m))
    set_execution_device(net, device)


def offload(groups: Mapping[str, Sequence[nn.Module]], device, mode: str, streamed: Sequence[str] = ()):
    """Apply ``mode`` to the networks (built on the CPU). ``groups``: name -> the networks that run together
    (e.g. the StreamingT2V UNet and its CAM); ``streamed``: the group names ``layers`` streams.
    Returns the ``OneResident`` manager (None for ``none``: everything is moved to ``device``)."""
    check_offload(mode)
    device = torch.device(device)
    if mode == "none":
        for group in groups.values():
            for net in group:
                net.to(device)
        return None
    manager = OneResident(device)
    for name, group in groups.items():
        if mode == "layers" and name in streamed:
            for net in group:
                stream_layers(net, device)
        else:
            manager.add(group)
    return manager


def partial_load(net: nn.Module, device, budget_bytes: float) -> int:
    """ComfyUI's partial load without ComfyUI (the GPU check, and ``--offload`` users with a budget): the
    largest layers go to ``device`` first while they fit ``budget_bytes``; the rest stay in CPU memory
    and are streamed at each call; everything outside the layers lives on ``device``. Returns the layer
    bytes placed on ``device``."""
    device = torch.device(device)
    use_operations(net, CAST_OPS)
    layers = sorted(layer_modules(net), key=lambda m: -sum(p.numel() * p.element_size() for p in m.parameters(False)))
    placed = 0
    for layer in layers:
        size = sum(p.numel() * p.element_size() for p in layer.parameters(False))
        if placed + size <= budget_bytes:
            layer.__dict__["_streamed"] = False
            move_tensors(layer, device)
            placed += size
            continue
        layer.__dict__["_streamed"] = True
        for param in layer.parameters(False):
            data = param.data.to(CPU)
            param.data = data.pin_memory() if device.type == "cuda" else data
    move_tensors(net, device, include=lambda m: not _is_streamed_layer(m) and not _is_layer_placed(m))
    set_execution_device(net, device)
    return placed


def _is_layer_placed(module: nn.Module) -> bool:
    return module.__dict__.get("_streamed") is False
