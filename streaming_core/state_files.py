"""Tensor files the pack writes and reads back: atomic writes (temp file + ``os.replace``) and
safetensors reading with errors that say what is wrong with the file.

Below every floor, so pipelines (resume states, upscale states) and checkpoints (weights, through
``checkpoints/files.py``, which adds pickles and folders) share one implementation. safetensors
itself is imported inside the functions: importing the pack must not load it
(``tests/test_nodes_pack_import.py``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping

import torch

from .errors import CheckpointError

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin")
WEIGHT_SUFFIXES = SAFETENSORS_SUFFIXES + PICKLE_SUFFIXES


def describe_size(path: Path) -> str:
    size = path.stat().st_size
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{size} B"
        size /= 1024
    return f"{size} B"


def check_exists(path: str | os.PathLike, what: str = "weight file") -> Path:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{what} not found: {path}. Check the path, or put the file there.")
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a folder; expected a single file ({', '.join(WEIGHT_SUFFIXES)}).")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{what} {path} is empty (0 bytes): the download or copy did not finish. Fetch it again.")
    return path


def read_safetensors_header(path: str | os.PathLike) -> dict:
    """Key -> {dtype, shape, data_offsets} from a safetensors header, without reading the tensors."""
    path = check_exists(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise CheckpointError(f"{path} is not a safetensors file (shorter than its 8-byte header length).")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8 or n > 200 * 1024 * 1024:
            raise CheckpointError(
                f"{path} is truncated or not a safetensors file: its header claims {n} bytes but the file has "
                f"{size} bytes in all. Fetch the file again."
            )
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} has a corrupt safetensors header ({exc}). Fetch the file again.") from exc
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} has a corrupt safetensors header (not a JSON object). Fetch the file again.")
    header.pop("__metadata__", None)
    try:
        end = max((int(v["data_offsets"][1]) for v in header.values()), default=0)
    except (TypeError, KeyError, IndexError, ValueError) as exc:
        raise CheckpointError(f"{path} has a corrupt safetensors header (an entry without valid data_offsets). "
                              f"Fetch the file again.") from exc
    if 8 + n + end > size:
        raise CheckpointError(
            f"{path} is truncated: its header describes {8 + n + end} bytes of data but the file has {size} "
            f"({describe_size(path)}). Fetch the file again."
        )
    return header


def load_safetensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """All tensors of a safetensors file, with clear errors for a missing, empty or truncated one."""
    from safetensors.torch import load_file

    path = Path(path)
    read_safetensors_header(path)  # clear errors for truncation before safetensors' own
    try:
        return load_file(str(path), device=str(device))
    except Exception as exc:  # safetensors raises its own SafetensorError type
        raise CheckpointError(f"{path} could not be read as safetensors ({exc}). Fetch the file again.") from exc


def _default_mode(directory: bool) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write (a file or a folder); it is published under
    ``path`` only when the block succeeds, with the usual permissions, so a crash or an interrupt never
    leaves a half-written weight file or model folder under the final name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    _remove(tmp)
    try:
        yield tmp
        os.chmod(tmp, _default_mode(tmp.is_dir()))
        if tmp.is_dir():
            _remove(path)
        os.replace(tmp, path)
    finally:
        _remove(tmp)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def save_safetensors(state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike, metadata: dict | None = None) -> None:
    """Write atomically: a crash never leaves a half-written file under the final name."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={k: str(v) for k, v in (metadata or {}).items()})


def save_torch(obj: object, path: str | os.PathLike) -> Path:
    """``torch.save`` atomically (for files whose real counterparts are pickles: .ckpt/.pth/.bin)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
    return Path(path)
