"""Pickle checkpoint -> safetensors, one tensor at a time.

``safetensors.torch.save_file`` serialises every tensor into memory before writing, which for the
25 GB StreamingT2V checkpoint means a second 25 GB. This writer emits the header first and then each
tensor's bytes straight from its (memory-mapped) storage, so the peak is one tensor. The file is
written under a temporary name and renamed at the end: a crash never leaves a half file behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping, Optional

import torch

from .. import validation
from ..errors import CheckpointError, InputError
from .files import atomic_path, check_exists, load_state_dict
from .layouts import detect_file_layout
from .st2v import FORMAT_METADATA

_DTYPE_NAMES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}
for _name, _code in (("float8_e4m3fn", "F8_E4M3"), ("float8_e5m2", "F8_E5M2")):
    if hasattr(torch, _name):
        _DTYPE_NAMES[getattr(torch, _name)] = _code

DTYPE_CHOICES = {"keep": None, "fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _tensor_bytes(t: torch.Tensor) -> memoryview:
    t = t.detach().to("cpu").contiguous()
    return memoryview(t.reshape(-1).view(torch.uint8).numpy()) if t.numel() else memoryview(b"")


def write_safetensors_streaming(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike,
                                metadata: Optional[Mapping[str, str]] = None,
                                dtype: Optional[torch.dtype] = None) -> int:
    """Write ``tensors`` (floating ones cast to ``dtype`` if given) as safetensors; returns bytes written."""
    path = Path(path)
    names = sorted(tensors)
    header: dict = {"__metadata__": {k: str(v) for k, v in (metadata or {}).items()}} if metadata else {}
    offset = 0
    out_dtypes = {}
    for name in names:
        t = tensors[name]
        target = dtype if (dtype is not None and t.is_floating_point()) else t.dtype
        if target not in _DTYPE_NAMES:
            raise InputError(f"tensor {name} has dtype {target}, which safetensors cannot store")
        size = t.numel() * torch.empty((), dtype=target).element_size()
        header[name] = {"dtype": _DTYPE_NAMES[target], "shape": list(t.shape), "data_offsets": [offset, offset + size]}
        out_dtypes[name] = target
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(len(raw).to_bytes(8, "little"))
        f.write(raw)
        for name in names:
            f.write(_tensor_bytes(tensors[name].to(out_dtypes[name])))
        f.flush()
        os.fsync(f.fileno())
    return 8 + len(raw) + offset


def convert_to_safetensors(src: str | os.PathLike, dst: str | os.PathLike, dtype: Optional[torch.dtype] = None,
                           overwrite: bool = False) -> dict:
    """Read ``src`` safely (weights only, memory-mapped) and write ``dst``. Returns a summary."""
    src, dst = check_exists(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise InputError(f"output {dst} must end in .safetensors")
    validation.output_path(dst, [src])
    if dst.exists() and not overwrite:
        raise InputError(f"output {dst} already exists: choose another name or pass --force to replace it.")
    sd = load_state_dict(src)
    layout = detect_file_layout(sd)
    metadata = {"source": src.name, "converted_by": "streaming_core convert"}
    if layout == "streamingt2v":
        metadata.update(FORMAT_METADATA)
    try:
        written = write_safetensors_streaming(sd, dst, metadata, dtype)
    except OSError as exc:
        raise CheckpointError(f"could not write {dst}: {exc}") from exc
    return {"tensors": len(sd), "bytes": written, "layout": layout, "path": str(dst)}
