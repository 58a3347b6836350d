"""Load one network out of a multi-part state dict, without holding its weights twice.

Every loader of a composite checkpoint (StreamingT2V official, VidXTend, ModelScope folders) does the
same three things per part: take the tensors under a prefix, build the module with a config read
from those shapes, and move the tensors in. Modules are built with their parameters on the ``meta``
device (no memory, no random init) and the checkpoint tensors are assigned in place, so a 25 GB
checkpoint never needs a second 25 GB of RAM. Buffers (e.g. position ids) are built for real.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import Counter
from typing import Callable, Iterable, Mapping, Optional

import torch
from torch import nn

from ..errors import CheckpointError


_ON_META: contextvars.ContextVar[bool] = contextvars.ContextVar("streaming_core_parameters_on_meta", default=False)
_HOOK_LOCK = threading.Lock()
_hook_installed = False


def _parameter_to_meta(module: nn.Module, name: str, param: nn.Parameter) -> Optional[nn.Parameter]:
    """torch's parameter-registration hook: inert except inside ``meta_parameters`` of this thread/context."""
    if not _ON_META.get() or param.device.type == "meta":
        return None
    return type(param)(param.to("meta"), requires_grad=param.requires_grad)


@contextlib.contextmanager
def meta_parameters():
    """Inside: every new ``nn.Parameter`` lives on the meta device; buffers are created normally.

    Scoped to the calling thread (a ``ContextVar``), with nothing patched: torch's own
    parameter-registration hook is installed once and does nothing outside this block, so models
    built concurrently in other threads keep real parameters. (``torch.device("meta")`` would put
    buffers such as CLIP's non-persistent ``position_ids`` on meta too, and they are not in the file.)
    """
    global _hook_installed
    with _HOOK_LOCK:
        if not _hook_installed:
            torch.nn.modules.module.register_module_parameter_registration_hook(_parameter_to_meta)
            _hook_installed = True
    token = _ON_META.set(True)
    try:
        yield
    finally:
        _ON_META.reset(token)


def sub_state_dict(sd: Mapping[str, torch.Tensor], prefix: str, ignore: Iterable[str] = ()) -> dict[str, torch.Tensor]:
    """Tensors under ``prefix`` with the prefix removed; ``ignore`` lists module keys to drop on purpose."""
    ignore = set(ignore)
    n = len(prefix)
    return {k[n:]: v for k, v in sd.items() if k.startswith(prefix) and k[n:] not in ignore}


def dominant_float_dtype(tensors: Iterable[torch.Tensor]) -> Optional[torch.dtype]:
    counts = Counter(t.dtype for t in tensors if t.is_floating_point())
    return counts.most_common(1)[0][0] if counts else None


def _examples(keys: list[str], prefix: str, limit: int = 5) -> str:
    shown = ", ".join(prefix + k for k in keys[:limit])
    return shown + (f" (and {len(keys) - limit} more)" if len(keys) > limit else "")


def check_state_dict(module: nn.Module, sd: Mapping[str, torch.Tensor], prefix: str, what: str,
                     source: str = "checkpoint") -> None:
    """Raise a ``CheckpointError`` naming missing, unexpected and mis-shaped keys (official names)."""
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(expected.keys() - sd.keys())
    unexpected = sorted(sd.keys() - expected.keys())
    mismatched = [(k, expected[k], tuple(sd[k].shape)) for k in sorted(expected.keys() & sd.keys())
                  if expected[k] != tuple(sd[k].shape)]
    problems = []
    if missing:
        problems.append(f"{len(missing)} of its {len(expected)} tensors are missing: {_examples(missing, prefix)}")
    if unexpected:
        problems.append(f"{len(unexpected)} tensors do not belong to it: {_examples(unexpected, prefix)}")
    if mismatched:
        shown = "; ".join(f"{prefix}{k}: expected {list(e)}, found {list(f)}" for k, e, f in mismatched[:5])
        more = f" (and {len(mismatched) - 5} more)" if len(mismatched) > 5 else ""
        problems.append(f"{len(mismatched)} tensors have the wrong shape for the architecture read from the "
                        f"other tensors: {shown}{more}")
    if problems:
        raise CheckpointError(f"{source}: the {what} (keys {prefix}*) does not load: " + "; ".join(problems)
                              + ". The file is damaged or is a different model.")


def load_component(
    sd: Mapping[str, torch.Tensor],
    prefix: str,
    builder: Callable[[Mapping[str, torch.Tensor]], nn.Module],
    *,
    what: str,
    dtype: Optional[torch.dtype] = None,
    device: str | torch.device = "cpu",
    ignore: Iterable[str] = (),
    source: str = "checkpoint",
) -> nn.Module:
    """Build ``builder(sub_sd)`` (a config inferred from the shapes) and assign the tensors under
    ``prefix`` into it, strictly. ``dtype``: cast floating tensors to it; None keeps the checkpoint's
    (its dominant floating dtype, so one stray float32 tensor does not split a float16 module).
    The module is returned in eval mode without gradients."""
    sub = sub_state_dict(sd, prefix, ignore)
    if not sub:
        raise CheckpointError(f"{source} has no {what} (no keys starting with {prefix!r}).")
    try:
        with meta_parameters():
            module = builder(sub)
    except KeyError as exc:
        key = str(exc).strip("'\"")
        raise CheckpointError(f"{source}: cannot read the {what} architecture: tensor {prefix}{key} is missing. "
                              f"The file is damaged or is a different model.") from exc
    except (ValueError, IndexError, TypeError) as exc:
        raise CheckpointError(f"{source}: cannot read the {what} architecture from its tensor shapes: {exc}") from exc
    check_state_dict(module, sub, prefix, what, source)
    target = dtype or dominant_float_dtype(sub.values())
    converted = {k: (v.to(device=device, dtype=target) if v.is_floating_point() and target else v.to(device))
                 for k, v in sub.items()}
    module.load_state_dict(converted, strict=True, assign=True)
    module.to(device)  # the buffers built outside the checkpoint
    return module.eval().requires_grad_(False)
