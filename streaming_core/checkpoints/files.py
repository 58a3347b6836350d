"""Read weight files safely: safetensors, or ``torch.load(weights_only=True)``, nothing else.

Why a module of its own: every loader (StreamingT2V, ModelScope, MS-Vid2Vid-XL, Stream-DiffVSR,
RAFT, open_clip) goes through here, so the safety rule, the memory mapping of multi-GB files and the
error messages for missing, truncated or unsafe files are written once.

Training checkpoints (PyTorch Lightning ``.ckpt``) carry bookkeeping objects next to the weights
(callback states, hyper-parameter containers, optimizer and loop states) of classes nobody can list
in advance. ``weights_only`` refuses them. So every global the file names that torch does not allow
by default gets an inert placeholder class of that name: torch's safe unpickler then hands it only
plain data (the constructor arguments and state the file stores), the real class is never imported,
constructed or called, and the weights are read exactly as they are. A reference to ``builtins.exec``
or ``subprocess.call`` becomes such a placeholder too: "calling" it stores its arguments and nothing
else. Torch itself refuses any global from ``sys``/``os``/``posix``/``nt`` (``os.system`` pickles as
``posix.system``) under ``weights_only`` before a placeholder can stand in; no training framework
pickles those, so such a file is refused with what it names.
"""

from __future__ import annotations

import json
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import torch

from ..errors import CheckpointError
# The safetensors half and the atomic writers live one floor down (pipelines write state files with
# them); their names stay importable from here for the loaders.
from ..state_files import (PICKLE_SUFFIXES, SAFETENSORS_SUFFIXES, WEIGHT_SUFFIXES, atomic_path,  # noqa: F401
                           check_exists, describe_size, load_safetensors, read_safetensors_header, save_safetensors,
                           save_torch)

_UNSUPPORTED_GLOBAL = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")
_BLOCKED_MODULE = re.compile(r"GLOBAL (\S+) whose module (\S+) is blocked")
_MAX_LEGACY_RETRIES = 4096  # legacy (non-zip) files are scanned by retrying: one unknown global per try


class _InertPlaceholder:
    """Stands in for any object of a class the file names: stores whatever plain data the pickle gives
    it (constructor arguments, state) and does nothing else."""

    def __new__(cls, *args, **kwargs):
        obj = object.__new__(cls)
        obj.__dict__["_args"] = args
        return obj

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        self.__dict__["_state"] = state

    def __call__(self, *args, **kwargs):  # a pickled function or factory: return inert data
        return _InertPlaceholder(*args)

    def __repr__(self) -> str:
        return f"<placeholder for {type(self).__module__}.{type(self).__qualname__}>"


def _placeholder_for(full_name: str) -> tuple[type, str]:
    module, _, name = full_name.rpartition(".")
    cls = type(name, (_InertPlaceholder,), {"__module__": module, "__qualname__": name})
    return cls, full_name


def _unknown_globals(path: Path) -> list[str]:
    """The globals a zip-format checkpoint names that torch does not allow by default, found by
    disassembling its pickle (nothing is executed), so one load with placeholders suffices."""
    try:
        return sorted(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # noqa: BLE001 - legacy format or a broken file: torch.load below says what is wrong
        return []


def _torch_load(path: Path, device) -> object:
    mmap = zipfile.is_zipfile(path)  # the zip format can be memory-mapped: a 25 GB file needs no 25 GB of RAM
    placeholders = [_placeholder_for(name) for name in (_unknown_globals(path) if mmap else [])]
    for _ in range(_MAX_LEGACY_RETRIES):
        try:
            with torch.serialization.safe_globals(placeholders):
                return torch.load(path, map_location=device, weights_only=True, mmap=mmap)
        except Exception as exc:  # noqa: BLE001 - re-raised with context below
            msg = str(exc)
            first_line = (msg.splitlines() or [type(exc).__name__])[0]  # EOFError from a cut-off pickle has no text
            blocked = _BLOCKED_MODULE.search(msg)
            if blocked:
                raise CheckpointError(
                    f"refusing to load {path}: its pickle names {blocked.group(1)}, from the module "
                    f"{blocked.group(2)} that torch's safe loader never lets a weight file name (no training "
                    f"framework stores such objects; nothing was run). If the file is yours, re-save its state "
                    f"dict as safetensors in a Python session of your own and use that file."
                ) from exc
            match = _UNSUPPORTED_GLOBAL.search(msg)
            # legacy format: found one by one; torch's message drops a "builtins." prefix, so try both names
            names = (match.group(1), "builtins." + match.group(1)) if match else ()
            new = [n for n in names if n not in {known for _, known in placeholders}]
            if new:
                placeholders += [_placeholder_for(n) for n in new]
                continue
            if "Weights only load failed" in msg:
                raise CheckpointError(
                    f"refusing to load {path}: it is not a plain weight file (the safe unpickler stopped at: "
                    f"{msg.split(chr(10)*3)[-1].split(chr(10))[0] or first_line}). Unpickling it fully could run "
                    f"arbitrary code, which this pack never does. Re-save its tensors as safetensors in a trusted "
                    f"Python session of your own, then use that file."
                ) from exc
            if "central directory" in msg or "zip archive" in msg or isinstance(exc, (EOFError, zipfile.BadZipFile)):
                raise CheckpointError(
                    f"{path} is truncated or corrupt ({describe_size(path)} on disk; {first_line}). "
                    f"The download or copy did not finish: fetch the file again."
                ) from exc
            raise CheckpointError(f"{path} could not be read as a PyTorch checkpoint: {first_line}") from exc
    raise CheckpointError(f"{path} names more than {_MAX_LEGACY_RETRIES} unknown classes: not a weight file.")


def unwrap_state_dict(obj: object, path: Path | str = "checkpoint") -> dict[str, torch.Tensor]:
    """The tensor dict inside a training checkpoint (Lightning ``state_dict``, ``model``, ``module``)."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model", "module", "ema"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
                obj = inner
                break
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors:
            return tensors
    raise CheckpointError(f"{path} holds no tensors at its top level or under 'state_dict': not a weight file.")


def load_state_dict(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a weight file, unwrapped from any training-checkpoint container.

    Pickle files are memory-mapped where their format allows, so the tensors are read from disk when
    used rather than all at once.
    """
    path = check_exists(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return load_safetensors(path, device)
    return unwrap_state_dict(_torch_load(path, device), path)


def _variant_order(prefer_half: bool) -> tuple[str, ...]:
    return (".fp16", "") if prefer_half else ("", ".fp16")


def part_weight_files(folder: str | os.PathLike, part: str, prefer_half: bool = False, hint: str = "") -> list[Path]:
    """The weight file(s) of one subfolder of a diffusers-style model folder: a sharded index, else
    one file, safetensors first. Both the fp16 and the full-precision variant may be there (hubs ship
    both): ``prefer_half`` picks the one matching the requested dtype, so an fp16 run never reads 2x
    the bytes and an fp32 run never gets fp16-rounded weights. ``hint``: what to do when it is missing."""
    sub = Path(folder) / part
    if not sub.is_dir():
        raise CheckpointError(f"{folder} has no '{part}/' subfolder" + (f": {hint}." if hint else "."))
    for variant in _variant_order(prefer_half):
        for index in [p for p in sorted(sub.glob("*.index.json")) if (".fp16." in p.name) == (variant == ".fp16")]:
            try:
                shards = sorted(set(json.loads(index.read_text()).get("weight_map", {}).values()))
            except (UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
                raise CheckpointError(f"{index} is not a valid shard index ({exc}); fetch it again.") from exc
            if shards:
                return [check_exists(sub / s, f"{part} shard") for s in shards]
    files = [p for p in sorted(sub.iterdir()) if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES]
    for suffixes in (SAFETENSORS_SUFFIXES, PICKLE_SUFFIXES):
        for variant in _variant_order(prefer_half):
            found = [p for p in files if p.suffix.lower() in suffixes
                     and (p.name[: -len(p.suffix)].endswith(".fp16") == (variant == ".fp16"))]
            if len(found) == 1:
                return found
            if len(found) > 1:
                raise CheckpointError(f"{sub} holds several weight files ({', '.join(p.name for p in found)}); "
                                      f"keep one.")
    found = f"{sub} holds no weight file ({', '.join(WEIGHT_SUFFIXES)})"
    raise CheckpointError(found + (f": {hint}." if hint else "."))


def load_state_dicts(paths: Iterable[str | os.PathLike], device="cpu") -> dict[str, torch.Tensor]:
    """Several files merged into one dict (sharded checkpoints); a key found twice is an error."""
    merged: dict[str, torch.Tensor] = {}
    for p in paths:
        sd = load_state_dict(p, device)
        dup = merged.keys() & sd.keys()
        if dup:
            raise CheckpointError(f"{p} repeats {len(dup)} keys of an earlier file, e.g. {sorted(dup)[:3]}.")
        merged.update(sd)
    return merged


# -- names, shapes and dtypes without the tensors (inspect, layout detection) -------------------------
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16", "I64": "int64",
                       "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8", "BOOL": "bool",
                       "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple
    dtype: str  # torch's name without "torch.", e.g. "float16"

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass
class TensorIndex:
    path: Path
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    lazy: bool = True  # True: no tensor data was read


def read_tensor_infos(path: str | os.PathLike) -> TensorIndex:
    path = check_exists(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        header = read_safetensors_header(path)
        from safetensors import safe_open  # heavy optional library: importing the pack must not load it

        with safe_open(str(path), "pt") as f:
            metadata = dict(f.metadata() or {})
        infos = {k: TensorInfo(tuple(v["shape"]), _SAFETENSORS_DTYPES.get(v["dtype"], v["dtype"].lower()))
                 for k, v in header.items()}
        return TensorIndex(path, infos, metadata)
    sd = load_state_dict(path)  # weights only; memory-mapped for the zip format
    infos = {k: TensorInfo(tuple(v.shape), str(v.dtype).replace("torch.", "")) for k, v in sd.items()}
    return TensorIndex(path, infos, lazy=zipfile.is_zipfile(path))
