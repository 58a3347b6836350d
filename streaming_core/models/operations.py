"""Layer operations: which classes a built model's layers use, and how their weights are stored.

Why: a memory manager (ComfyUI's ModelPatcher, or the CLI's ``--offload``) can only keep a layer's
weights away from the compute device when the layer fetches them itself at call time. ComfyUI's
``comfy.ops`` layers do that (``comfy_cast_weights``); plain ``torch.nn`` layers do not. The core
never imports ComfyUI, so the namespace is injected: ``use_operations(model, ops)`` turns every
plain ``torch.nn`` layer of a built model (ours, and the diffusers / transformers / open_clip /
torchvision parts alike) into the class of the same name in ``ops``, keeping its parameters. The
default namespace is ``torch.nn`` itself (nothing changes); ``CAST_OPS`` is the core's own
cast-capable namespace (weights cast to the input's dtype and device at call time), used for fp8
storage and layer streaming outside ComfyUI.

Swapping after construction (``__class__``) instead of passing ``ops`` to every constructor keeps a
single code path for our modules and the library ones (whose constructors take no operations), and
a parameter keeps its identity, so state dicts, hooks and ComfyUI's bookkeeping see the same tensors.
"""

from __future__ import annotations

import types
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError

# The layer classes an operations namespace provides (the set comfy.ops covers).
LAYER_NAMES = ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm", "Embedding")
TORCH_OPS = nn  # the default: plain torch.nn, nothing swapped

# Weight storage choices (ComfyUI's UNETLoader names): "default" keeps the load dtype.
WEIGHT_DTYPES = {"default": None, "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


def parse_weight_dtype(name: str) -> Optional[torch.dtype]:
    """The storage dtype for a weight dtype choice (None: keep the load dtype); a bad name is a one-line error."""
    if name not in WEIGHT_DTYPES:
        raise InputError(f"unknown weight dtype {name!r}: use one of {', '.join(WEIGHT_DTYPES)}")
    return WEIGHT_DTYPES[name]


def _cast(tensor: Optional[torch.Tensor], like: torch.Tensor) -> Optional[torch.Tensor]:
    if tensor is None:
        return None
    dtype = like.dtype if like.is_floating_point() else tensor.dtype
    if dtype.itemsize == 1 and dtype.is_floating_point:  # never compute in fp8
        dtype = torch.float32
    return tensor.to(device=like.device, dtype=dtype, non_blocking=True)


class _CastLinear(nn.Linear):
    def forward(self, x):
        return F.linear(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastConv1d(nn.Conv1d):
    def forward(self, x):
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastConv2d(nn.Conv2d):
    def forward(self, x):
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastConv3d(nn.Conv3d):
    def forward(self, x):
        return self._conv_forward(x, _cast(self.weight, x), _cast(self.bias, x))


class _CastGroupNorm(nn.GroupNorm):
    def forward(self, x):
        return F.group_norm(x, self.num_groups, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class _CastLayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, _cast(self.weight, x), _cast(self.bias, x), self.eps)


class _CastEmbedding(nn.Embedding):
    def forward(self, ids):
        weight = self.weight.to(ids.device)
        if weight.dtype.itemsize == 1:
            weight = weight.float()
        return F.embedding(ids, weight, self.padding_idx, self.max_norm, self.norm_type, self.scale_grad_by_freq,
                           self.sparse)


# Cast-capable layers without ComfyUI: the weight may live in another dtype (fp8) or on another
# device (CPU while computing on the GPU); each call casts it to the input's dtype and device.
CAST_OPS = types.SimpleNamespace(Linear=_CastLinear, Conv1d=_CastConv1d, Conv2d=_CastConv2d, Conv3d=_CastConv3d,
                                 GroupNorm=_CastGroupNorm, LayerNorm=_CastLayerNorm, Embedding=_CastEmbedding)


def use_operations(model: nn.Module, ops=TORCH_OPS) -> int:
    """Give every plain ``torch.nn`` layer of ``model`` the class of the same name in ``ops``, in place.

    Only layers whose class is exactly the torch one are changed (a subclass has its own forward).
    ``ops`` must provide subclasses of the torch layers that keep their parameters as they are (ComfyUI's
    ``comfy.ops.manual_cast`` and ``disable_weight_init`` do, as does ``CAST_OPS``). Returns the number
    of layers changed.
    """
    if ops is TORCH_OPS or ops is None:
        return 0
    by_torch_class = {}
    for name in LAYER_NAMES:
        target = getattr(ops, name, None)
        if target is not None:
            if not issubclass(target, getattr(nn, name)):
                raise TypeError(f"operations {name} must subclass torch.nn.{name}")
            by_torch_class[getattr(nn, name)] = target
    changed = 0
    for module in model.modules():
        target = by_torch_class.get(type(module))
        if target is not None:
            module.__class__ = target
            module.__dict__["_cast_capable"] = True
            if not hasattr(module, "bias"):  # nn.Embedding has none; cast-capable layers read it (as None)
                module.register_parameter("bias", None)
            changed += 1
    return changed


def layer_modules(model: nn.Module):
    """The layers of ``model`` that ``use_operations`` made cast-capable. (Not every subclass of a torch
    layer: e.g. MultiheadAttention's ``out_proj`` weight is read by its parent, so it stays as it is.)"""
    return [m for m in model.modules() if m.__dict__.get("_cast_capable", False)]


def store_weights(model: nn.Module, dtype: Optional[torch.dtype]) -> int:
    """Store the weight and bias of every covered layer in ``dtype`` (fp8), in place; returns bytes saved.

    Only the layers ``use_operations`` made cast-capable (``CAST_OPS`` or ComfyUI's ``manual_cast``) are
    stored so: they compute in the input's dtype. Norm layers and embeddings stay as they are: they are small, and
    fp8 would cost accuracy for nothing.
    """
    if dtype is None:
        return 0
    for module in model.modules():  # each part keeps computing in its own load dtype
        module.__dict__["_execution_dtype"] = execution_dtype(module)
    saved = 0
    for module in layer_modules(model):
        if isinstance(module, (nn.GroupNorm, nn.LayerNorm, nn.Embedding)):
            continue
        for name in ("weight", "bias"):
            param = getattr(module, name, None)
            if param is None or not param.is_floating_point() or param.dtype == dtype:
                continue
            stored = nn.Parameter(param.detach().to(dtype), requires_grad=False)
            saved += param.numel() * (param.element_size() - stored.element_size())
            setattr(module, name, stored)
    return saved


def set_execution_device(model: nn.Module, device) -> None:
    """Tell ``model`` (every module in it) where it computes, whatever device its weights are on.

    A memory manager calls this when some layer weights stay on the CPU (partial load, streaming):
    the pipelines then put their tensors on ``device`` and the cast-capable layers fetch their weights.
    """
    device = None if device is None else torch.device(device)
    for module in model.modules():
        module.__dict__["_execution_device"] = device


def set_execution_dtype(model: nn.Module, dtype: Optional[torch.dtype]) -> None:
    """Tell ``model`` which dtype it computes in when its weights are stored in another one (fp8)."""
    for module in model.modules():
        module.__dict__["_execution_dtype"] = dtype


def execution_dtype(module: nn.Module) -> torch.dtype:
    """The dtype ``module`` computes in: the one set by ``store_weights``, else that of its first weight."""
    dtype = module.__dict__.get("_execution_dtype")
    if dtype is not None:
        return dtype
    for tensor in module.parameters():
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def execution_device(module: nn.Module) -> torch.device:
    """Where ``module`` computes: the device a memory manager set, else that of its first weight."""
    device = module.__dict__.get("_execution_device")
    if device is not None:
        return device
    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def move_tensors(model: nn.Module, device, include=lambda module: True) -> int:
    """Move the parameters and buffers held directly by each module ``include`` accepts; returns bytes moved.

    Used for what a layer-wise memory manager leaves behind: tensors outside the covered layers
    (attention gates, positional embeddings, batch norms, buffers) are small and must sit on the
    compute device.
    """
    device = torch.device(device)
    moved = 0
    for module in model.modules():
        if not include(module):
            continue
        for tensors in (module._parameters, module._buffers):
            for name, tensor in tensors.items():
                if tensor is None or tensor.device == device:
                    continue
                moved += tensor.numel() * tensor.element_size()
                if isinstance(tensor, nn.Parameter):
                    tensor.data = tensor.data.to(device)
                else:
                    tensors[name] = tensor.to(device)
    return moved
