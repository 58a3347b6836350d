"""Model folders: ``models/streamingt2v/`` and ``models/stream_diffvsr/`` through ComfyUI's folder_paths.

Inside ComfyUI the folders are registered with an explicit extension set and merged with whatever
``extra_model_paths.yaml`` already added under the same names (ComfyUI applies the yaml before it
imports custom nodes, and for a name it does not know it records an empty extension set, which
would list every file). Outside ComfyUI the same names resolve under ``$STREAMING_MODELS_DIR`` (or
``<pack>/models``), so nodes and tests find files the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

from ...streaming_core.errors import CheckpointError
from .runtime import comfy_module

MODEL_EXTENSIONS = frozenset({".safetensors", ".sft", ".ckpt", ".pt", ".pth", ".bin"})
MODEL_FOLDERS = ("streamingt2v", "stream_diffvsr")
MODELS_DIR_ENV = "STREAMING_MODELS_DIR"
_PACK_ROOT = Path(__file__).resolve().parents[2]


def register_model_folders() -> None:
    """Add our folders to ComfyUI's registry (idempotent; a no-op outside ComfyUI)."""
    fp = comfy_module("folder_paths")
    if fp is None:
        return
    for name in MODEL_FOLDERS:
        dirs, extensions = fp.folder_names_and_paths.get(name, ([], set()))
        default = os.path.join(fp.models_dir, name)
        dirs = list(dirs) + ([default] if default not in dirs else [])
        fp.folder_names_and_paths[name] = (dirs, set(extensions) | MODEL_EXTENSIONS)


def folder_dirs(kind: str) -> list[str]:
    """Every directory searched for ``kind``, in lookup order."""
    fp = comfy_module("folder_paths")
    if fp is not None:
        register_model_folders()
        return list(fp.get_folder_paths(kind))
    base = os.environ.get(MODELS_DIR_ENV) or str(_PACK_ROOT / "models")
    return [os.path.join(base, kind)]


def list_files(kind: str) -> list[str]:
    """Model files under ``kind`` (relative paths, sub-folders included) for a dropdown."""
    fp = comfy_module("folder_paths")
    if fp is not None:
        register_model_folders()
        return fp.get_filename_list(kind)
    found = set()
    for root in folder_dirs(kind):
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for f in filenames:
                if os.path.splitext(f)[1].lower() in MODEL_EXTENSIONS:
                    found.add(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(found)


def _missing(kind: str, name: str, what: str) -> CheckpointError:
    return CheckpointError(
        f"{what} '{name}' is not in the '{kind}' model folders {folder_dirs(kind)}. Put it there (or add a "
        f"'{kind}:' entry to extra_model_paths.yaml), then refresh the node definitions (press R) and pick it again.")


def _inside(root: str, name: str) -> str:
    """``root/name`` without letting ``name`` climb out of ``root``."""
    return os.path.join(root, os.path.relpath(os.path.join(os.sep, name), os.sep))


def full_path(kind: str, name: str) -> str:
    """Absolute path of a file picked from ``list_files(kind)``; CheckpointError if it is gone."""
    fp = comfy_module("folder_paths")
    if fp is not None:
        register_model_folders()
        path = fp.get_full_path(kind, name)
        if path is None:
            raise _missing(kind, name, "Model file")
        return path
    for root in folder_dirs(kind):
        path = _inside(root, name)
        if os.path.isfile(path):
            return path
    raise _missing(kind, name, "Model file")


def list_subfolders(kind: str, marker: str | None = None) -> list[str]:
    """Immediate sub-folders of the ``kind`` folders (e.g. a Stream-DiffVSR hub folder
    ``models/stream_diffvsr/<name>/``), only those holding ``marker`` when given."""
    names = set()
    for root in folder_dirs(kind):
        if not os.path.isdir(root):
            continue
        for entry in os.listdir(root):
            path = os.path.join(root, entry)
            if entry.startswith(".") or not os.path.isdir(path):
                continue
            if marker is None or os.path.exists(os.path.join(path, marker)):
                names.add(entry)
    return sorted(names)


def subfolder_path(kind: str, name: str) -> str:
    """Absolute path of a sub-folder picked from ``list_subfolders(kind)``."""
    for root in folder_dirs(kind):
        path = _inside(root, name)
        if os.path.isdir(path):
            return path
    raise _missing(kind, name, "Model folder")
