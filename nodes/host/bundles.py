"""ComfyUI memory management for models that are bundles of networks (Stream-DiffVSR, an enhancer).

The core keeps such a model as a plain object holding several modules (``SDVSRModels``,
``Enhancer``); ModelPatcher needs one ``torch.nn.Module``. ``BundleModule`` registers the parts as
sub-modules, so ComfyUI moves and offloads all of them together, and carries the bundle object
itself, which keeps referring to the very same (moved) modules.
"""

from __future__ import annotations

from typing import Iterable, Mapping, Optional

import torch

from .models import core_model, load_for_use, wrap_model


class BundleModule(torch.nn.Module):
    def __init__(self, bundle, parts: Mapping[str, torch.nn.Module]):
        super().__init__()
        self.parts = torch.nn.ModuleDict(dict(parts))
        self.bundle = bundle  # a plain attribute: not a module, never copied


def wrap_bundle(bundle, parts: Mapping[str, torch.nn.Module], role: str = "diffusion", weight_dtype: str = "default",
                fp8_parts: Optional[Iterable[str]] = None):
    """A patcher managing every module of ``bundle`` (given by name in ``parts``); ``fp8_parts`` names the
    parts whose weights ``weight_dtype`` stores (default: all)."""
    module = BundleModule(bundle, parts)
    chosen = None if fp8_parts is None else [module.parts[name] for name in fp8_parts]
    return wrap_model(module, role, weight_dtype=weight_dtype, fp8_parts=chosen)


def bundle_of(patcher):
    """The bundle inside a patcher made by ``wrap_bundle`` (not moved)."""
    return core_model(patcher).bundle


def load_bundle_for_use(patcher, memory_required: int = 0):
    """Load the bundle's modules on their device right before use; returns the bundle."""
    (module,) = load_for_use([patcher], memory_required)
    return module.bundle
