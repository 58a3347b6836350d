"""The resume state of a streamed refine: a folder the CLI and the node write while the refiner runs.

Layout (every file written atomically with temp file + ``os.replace``, the state last, so an
interruption at any moment leaves the previous consistent state):

    STATE/state.safetensors           the wavefront sampler's bounded state (frames alive, clean latents
                                      read ahead, final latents not yet decoded) as tensors; counters,
                                      settings and the input/model fingerprints as JSON metadata
    STATE/frames/part_000000.safetensors   the finished output frames, uint8 ("frames"), in order

Held in the state: about (steps + 2) windows of latents, whatever the video's length. The finished
frames are on disk only (uint8, what a video file holds): the resumed stream re-reads them instead
of holding them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch

from ..checkpoints.files import save_safetensors
from ..errors import InputError
from ..video_io import to_uint8

STATE_FILE = "state.safetensors"
FRAMES_DIR = "frames"
METADATA_KEY = "streaming_refine_state"


@dataclass
class RefineCheckpoint:
    tensors: dict  # the sampler's tensors, plus "decode.N" latents waiting for the VAE
    meta: dict  # {"identity": {...}, "sampler": {...}, "parts": int, "frames": int, "decode": int}


def digest_frames(parts) -> str:
    """A short hash of frames (uint8-rounded), given as an iterable of (n, H, W, 3) parts."""
    h = hashlib.sha256()
    for part in parts:
        h.update(to_uint8(part).numpy().tobytes())
    return h.hexdigest()[:16]


def digest_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def describe_difference(stored: dict, current: dict) -> Optional[str]:
    """None if the identities match, else what differs, in words (video, model, then settings by name)."""
    if stored.get("video") != current.get("video"):
        return "another input video"
    if stored.get("model") != current.get("model"):
        return "another enhancer model (or dtype)"
    a, b = stored.get("settings", {}), current.get("settings", {})
    differs = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if differs:
        return "other settings: " + ", ".join(f"{k} {a.get(k)!r} there, {b.get(k)!r} now" for k in differs)
    return None


class RefineStateFolder:
    """Read and write one streamed refine's resume state under ``path``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def exists(self) -> bool:
        return (self.path / STATE_FILE).is_file()

    def _part_file(self, index: int) -> Path:
        return self.path / FRAMES_DIR / f"part_{index:06d}.safetensors"

    def save_part(self, index: int, frames: torch.Tensor) -> None:
        save_safetensors({"frames": to_uint8(frames)}, self._part_file(index))

    def save(self, checkpoint: RefineCheckpoint) -> None:
        tensors = {k: v.detach().cpu().contiguous() for k, v in checkpoint.tensors.items()}
        if not tensors:  # safetensors needs at least one tensor to carry the metadata
            tensors["empty"] = torch.zeros(0)
        save_safetensors(tensors, self.path / STATE_FILE, metadata={METADATA_KEY: json.dumps(checkpoint.meta)})

    def load(self, identity: dict) -> RefineCheckpoint:
        """The saved state, after checking it belongs to this video, model and settings."""
        from safetensors import safe_open

        file = self.path / STATE_FILE
        try:
            with safe_open(str(file), "pt") as f:
                meta = json.loads((f.metadata() or {})[METADATA_KEY])
                tensors = {k: f.get_tensor(k) for k in f.keys() if k != "empty"}
        except Exception as exc:  # noqa: BLE001 - safetensors and json raise their own error types
            raise InputError(f"{file} is not a readable refine state ({type(exc).__name__}: {exc}); delete "
                             f"{self.path} to start over.") from exc
        difference = describe_difference(meta.get("identity", {}), identity)
        if difference:
            raise InputError(f"the refine state at {self.path} belongs to a run with {difference}: use another "
                             f"state folder, or delete that one to start over.")
        return RefineCheckpoint(tensors, meta)

    def iter_parts(self, count: int) -> Iterator[torch.Tensor]:
        """The first ``count`` stored output parts, (n, H, W, 3) float in 0..1."""
        from safetensors.torch import load_file

        for index in range(count):
            file = self._part_file(index)
            if not file.is_file():
                raise InputError(f"the refine state at {self.path} counts {count} finished parts but {file.name} "
                                 f"is missing; delete {self.path} to start over.")
            yield load_file(str(file))["frames"].float() / 255.0

    def remove(self) -> None:
        if self.path.is_dir():
            shutil.rmtree(self.path)
