"""What is in a weight file or folder: its layout, its parts, their parameter counts and dtypes.

Only names, shapes and dtypes are read: the safetensors header (no tensor data), or a pickle opened
with ``torch.load(weights_only=True, mmap=True)``, whose tensors stay unread on disk. So inspecting
the 25 GB official checkpoint costs its pickle index, not 25 GB of reads. (Pickles in torch's legacy
non-zip format cannot be memory-mapped and are read whole; ``TensorIndex.lazy`` says so.)
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import CheckpointError
from ..state_files import check_exists
from .files import (SAFETENSORS_SUFFIXES, WEIGHT_SUFFIXES, TensorIndex, TensorInfo, part_weight_files,  # noqa: F401
                    read_tensor_infos)
from .image_encoder import KNOWN_TOWERS
from .layouts import (LAYOUTS, Layout, detect_file_layout, detect_folder_layout, has_role, hf_vision_prefix,
                      open_clip_visual_prefix, top_level_names)

_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2}


# -- summaries --------------------------------------------------------------------------------------
@dataclass
class Component:
    label: str
    where: str  # key prefix or subfolder
    tensors: int = 0
    params: int = 0
    dtypes: Counter = field(default_factory=Counter)
    file: str = ""

    def add(self, info: TensorInfo) -> None:
        self.tensors += 1
        self.params += info.numel
        self.dtypes[info.dtype] += 1

    @property
    def dtype_text(self) -> str:
        return ", ".join(f"{d}" if len(self.dtypes) == 1 else f"{d} ({n})" for d, n in self.dtypes.most_common())


@dataclass
class Inspection:
    path: Path
    layout: str
    components: list[Component] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list["Inspection"] = field(default_factory=list)  # a folder of separate files
    lazy: bool = True
    subfolders: dict[str, str] = field(default_factory=dict)  # a models root: subfolder -> what it holds

    @property
    def info(self) -> Layout:
        return LAYOUTS.get(self.layout, LAYOUTS["unknown"])

    def as_dict(self) -> dict:
        return {"path": str(self.path), "layout": self.layout, "title": self.info.title, "use": self.info.use,
                "components": [{"label": c.label, "where": c.where, "file": c.file, "tensors": c.tensors,
                                "params": c.params, "dtypes": dict(c.dtypes)} for c in self.components],
                "notes": self.notes, "files": [f.as_dict() for f in self.files], "lazy": self.lazy,
                "subfolders": dict(self.subfolders)}

    def lines(self, indent: str = "") -> list[str]:
        out = [f"{indent}{self.path}: {_disk_size(self.path)}"
               + ("" if self.lazy else " (legacy pickle: read whole)"),
               f"{indent}layout: {self.layout} = {self.info.title}",
               f"{indent}use: {self.info.use}"]
        if self.components:
            width = max(len(c.label) for c in self.components)
            wwidth = max(len(c.where or "(rest)") for c in self.components)
            out.append(f"{indent}  {'component':<{width}}  {'keys':<{wwidth}}  {'tensors':>7}  {'parameters':>14}  "
                       f"{'bytes':>9}  dtypes")
            for c in self.components:
                out.append(f"{indent}  {c.label:<{width}}  {c.where or '(rest)':<{wwidth}}  {c.tensors:>7}  "
                           f"{c.params:>14,}  {_human(_bytes(c)):>9}  {c.dtype_text}")
            total = sum(c.params for c in self.components)
            out.append(f"{indent}  {'total':<{width}}  {'':<{wwidth}}  {sum(c.tensors for c in self.components):>7}  "
                       f"{total:>14,}  {_human(sum(_bytes(c) for c in self.components)):>9}")
        if self.subfolders:
            width = max(len(name) for name in self.subfolders)
            out += [f"{indent}  {name:<{width}}  {what}" for name, what in self.subfolders.items()]
        out += [f"{indent}note: {n}" for n in self.notes]
        for f in self.files:
            out.append("")
            out += f.lines(indent + "  ")
        return out


def _bytes(c: Component) -> int:
    if not c.tensors:
        return 0
    per = sum(_BYTES.get(d, 1) * n for d, n in c.dtypes.items()) / c.tensors  # mixed dtypes: an estimate
    return int(c.params * per) if len(c.dtypes) > 1 else c.params * _BYTES.get(next(iter(c.dtypes)), 1)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n}"


def _disk_size(path: Path) -> str:
    if path.is_dir():
        total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        return f"folder, {_human(total)} on disk"
    return f"{_human(path.stat().st_size)} on disk"


def _group(tensors: dict[str, TensorInfo], parts: tuple[tuple[str, str], ...], keep_empty: bool) -> list[Component]:
    comps = [Component(label, prefix) for label, prefix in parts] or [Component("tensors", "")]
    rest = next((c for c in comps if c.where == ""), None)
    for key, info in tensors.items():
        target = next((c for c in comps if c.where and key.startswith(c.where)), rest)
        if target is None:
            target = rest = Component("other", "")
            comps.append(rest)
        target.add(info)
    return [c for c in comps if c.tensors or (keep_empty and c.where)]


def _tower_note(tensors: dict[str, TensorInfo]) -> Optional[str]:
    """Which CLIP vision tower a file holds, and whether APM can use it."""

    prefix = open_clip_visual_prefix(tensors)
    if prefix is not None:
        width = tensors[prefix + "conv1.weight"].shape[0]
        layers = sum(1 for k in tensors
                     if k.startswith(prefix + "transformer.resblocks.") and k.endswith(".ln_1.weight"))
        proj = tensors.get(prefix + "proj")
        dim = proj.shape[1] if proj is not None else None
    else:
        prefix = hf_vision_prefix(tensors)
        if prefix is None:
            return None
        width = tensors[prefix + "vision_model.embeddings.patch_embedding.weight"].shape[0]
        layers = sum(1 for k in tensors if k.startswith(prefix + "vision_model.encoder.layers.")
                     and k.endswith(".layer_norm1.weight"))
        proj = tensors.get(prefix + "visual_projection.weight")
        dim = proj.shape[0] if proj is not None else None
    name = KNOWN_TOWERS.get((width, layers))
    if dim is None:
        verdict = "no image projection: not usable for APM"
    elif name == "ViT-H/14" and dim == 1024:
        verdict = "usable as StreamingT2V's APM image encoder"
    elif name is not None:
        verdict = "not usable for APM, which needs ViT-H/14 (width 1280, 32 layers, 1024-d)"
    elif dim == 1024:
        verdict = "loads as the APM image encoder, but is not the real ViT-H/14's size (a test file?)"
    else:
        verdict = "not usable for APM, which needs 1024-d embeddings"
    blocks = f"{layers} layer{'s' if layers != 1 else ''}"
    return f"image tower: {name or 'a CLIP ViT'}, width {width}, {blocks}, {dim or 'no'}-d embedding: {verdict}"


# what a file that is not a weight file most likely is, by suffix, for the message
_NOT_WEIGHTS = {".mp4": "a video", ".mov": "a video", ".mkv": "a video", ".webm": "a video", ".avi": "a video",
                ".gif": "an image", ".png": "an image", ".jpg": "an image", ".jpeg": "an image", ".webp": "an image",
                ".md": "a text file", ".txt": "a text file", ".json": "a JSON file", ".yaml": "a YAML file",
                ".yml": "a YAML file", ".py": "a Python file", ".html": "a web page"}


def weight_format(path: Path) -> Optional[str]:
    """"safetensors", "pickle" (PyTorch's zip or legacy format) or None, from the file's first bytes."""
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # u64 header length, then the JSON header (a short file: its own error)
        return "safetensors"
    if head[:4] == b"PK\x03\x04" or head[:1] == b"\x80":  # torch.save's zip archive / a pickle protocol byte
        return "pickle"
    return None


def check_weight_file(path: Path) -> None:
    """Refuses, in one line, a file whose content is not safetensors or a PyTorch pickle (a README, a video,
    an HTML page saved by a failed download) before any unpickler sees it."""
    if weight_format(path) is not None:
        return
    suffix = path.suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        what = "it is not a safetensors file (no safetensors header) nor a PyTorch checkpoint"
    elif suffix in WEIGHT_SUFFIXES:
        what = "it is not a PyTorch checkpoint (neither its zip nor its pickle format) nor a safetensors file"
    elif suffix in _NOT_WEIGHTS:
        what = f"it is {_NOT_WEIGHTS[suffix]}"
    else:
        what = "its content is neither safetensors nor a PyTorch checkpoint"
    raise CheckpointError(f"{path} is not a weight file: {what}. inspect reads model weights "
                          f"({', '.join(WEIGHT_SUFFIXES)}) or a model folder; give one of those.")


def inspect_file(path: str | os.PathLike) -> Inspection:
    check_weight_file(check_exists(path))
    index = read_tensor_infos(path)
    tensors = index.tensors
    layout = detect_file_layout(tensors)
    row = LAYOUTS[layout]
    parts = _group(tensors, row.components, keep_empty=row.complete)
    result = Inspection(index.path, layout, parts, lazy=index.lazy)
    if layout == "streamingt2v" and index.path.suffix.lower() in SAFETENSORS_SUFFIXES:
        source = index.metadata.get("source")
        result.notes.append("this pack's safetensors form of the official checkpoint"
                            + (f" (converted from {source})" if source else ""))
    if row.note:
        result.notes.append(row.note)
    if row.complete:
        result.notes += [f"MISSING: {c.label} ({c.where}*)" for c in result.components
                         if c.tensors == 0]
    note = _tower_note(tensors) if has_role(layout, "streamingt2v.image_encoder") else None
    if note:
        result.notes.append(note)
    if layout == "unknown":
        result.notes.append(f"top-level names: {top_level_names(tensors)}")
    return result


# -- folders ----------------------------------------------------------------------------------------
def _weight_files(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES]


def _inspect_subfolders(folder: Path, layout: str) -> Inspection:
    row = LAYOUTS[layout]
    result = Inspection(folder, layout)
    for label, where in row.components:
        part = where.rstrip("./")
        comp = Component(label, part + "/")
        try:
            files = part_weight_files(folder, part, hint="")
        except CheckpointError as exc:
            if row.complete:  # every part is needed
                result.notes.append(f"MISSING: {label} ({exc})")
                result.components.append(comp)
            continue
        comp.file = ", ".join(p.name for p in files)
        for f in files:
            index = read_tensor_infos(f)
            result.lazy &= index.lazy
            for info in index.tensors.values():
                comp.add(info)
        result.components.append(comp)
    if row.note:
        result.notes.append(row.note)
    for companion in row.companions:  # e.g. Stream-DiffVSR's RAFT file, in the folder or beside it
        for name in LAYOUTS[companion].file_names:
            found = next((p for p in (folder / name, folder.parent / name) if p.is_file()), None)
            if found is not None:
                result.files.append(inspect_file(found))
    return result


def inspect_path(path: str | os.PathLike) -> Inspection:
    """The ``Inspection`` of a weight file or of a model folder (a folder of unrelated files: each one)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"not found: {path}. Check the path.")
    if not path.is_dir():
        return inspect_file(path)
    layout = detect_folder_layout(path)
    if layout in _model_folders():
        return _inspect_subfolders(path, layout)
    files = _weight_files(path)
    if not files:
        subfolders = _model_subfolders(path)
        if not subfolders:
            raise CheckpointError(f"{path} holds no weight file ({', '.join(WEIGHT_SUFFIXES)}) and no model "
                                  "subfolders.")
        return Inspection(path, "models_root", subfolders=subfolders)
    return Inspection(path, "folder" if layout == "unknown" else layout, files=[inspect_file(f) for f in files],
                      subfolders=_model_subfolders(path))


def _model_folders() -> tuple[str, ...]:
    """The folder layouts that are one model in subfolders (their components are subfolders)."""
    return tuple(row.name for row in LAYOUTS.values() if row.kind == "folder" and row.components)


def _model_subfolders(root: Path) -> dict[str, str]:
    """``name/`` -> what it holds, for each subfolder of a models root that holds weights (at any depth):
    its model folders (by layout) and its loose weight files. Only names and headers are read."""
    found = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        layout = detect_folder_layout(sub)
        if layout in _model_folders():
            found[sub.name + "/"] = LAYOUTS[layout].title
            continue
        loose = [p.name for p in _weight_files(sub)]
        models = [f"{p.name}/ ({LAYOUTS[kind].short})" for p in sorted(sub.iterdir())
                  if p.is_dir() and (kind := detect_folder_layout(p)) in _model_folders()]
        deeper = sum(1 for p in sub.rglob("*") if p.is_file() and p.suffix.lower() in WEIGHT_SUFFIXES)
        parts = ([f"{len(loose)} weight file{'s' if len(loose) != 1 else ''}: {', '.join(loose)}"] if loose else [])
        parts += [f"model folder{'s' if len(models) != 1 else ''} {', '.join(models)}"] if models else []
        if not parts and deeper:
            parts = [f"{deeper} weight file{'s' if deeper != 1 else ''} in its subfolders"]
        if parts:
            found[sub.name + "/"] = "; ".join(parts)
    return found
