"""The file side of resuming a long run: a folder the CLI and the nodes write after every chunk.

Layout (every file written atomically, the state last, so an interruption at any moment leaves the
previous consistent state):

    STATE/state.safetensors           LoopState: conditioning frames, anchor, generator state as
                                      tensors; counters, settings and model fingerprint as JSON
                                      metadata ("streamingt2v_loop_state")
    STATE/frames/chunk_000000.safetensors   the frames of chunk 0, 1, ... ("frames" tensor)

Frames are stored as uint8 by default (what a video file holds anyway: 4x smaller than float); the
conditioning frames the next chunk needs are always stored in float32, so a resumed run generates
exactly the frames an uninterrupted one would. ``exact_frames=True`` stores float32 frames too.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Iterator, Optional

import torch

from .. import validation
from ..errors import InputError
from ..state_files import save_safetensors
from ..video_io import to_uint8
from .long_video import ChunkDone, LoopState

STATE_FILE = "state.safetensors"
FRAMES_DIR = "frames"
METADATA_KEY = "streamingt2v_loop_state"


class RunFolder:
    """Read and write one run's resume state under ``path`` (a folder)."""

    def __init__(self, path: str | os.PathLike, exact_frames: bool = False):
        self.path = Path(path)
        self.exact_frames = exact_frames

    def check_writable(self) -> None:
        """Refuse at once a place where the state cannot be written (a file, a read-only folder)."""
        validation.output_path(self.path, what="resume state folder", folder=True)

    # -- writing ---------------------------------------------------------------------------------
    def _chunk_file(self, index: int) -> Path:
        return self.path / FRAMES_DIR / f"chunk_{index:06d}.safetensors"

    def _save_frames(self, index: int, frames: torch.Tensor) -> None:
        data = frames.detach().float().cpu() if self.exact_frames else to_uint8(frames)
        save_safetensors({"frames": data}, self._chunk_file(index))

    def record_start(self, frames: torch.Tensor) -> None:
        """Store a given start video as chunk 0 (runs that extend a video rather than generate it)."""
        self._save_frames(0, frames)

    def record(self, done: ChunkDone) -> None:
        """``on_chunk`` of the pipelines: the chunk's frames, then the state that counts them."""
        self._save_frames(done.index, done.frames)
        self.save_state(done.state)

    def save_state(self, state: LoopState) -> None:
        tensors = {"cond_frames": state.cond_frames.float().cpu(), "anchor": state.anchor.float().cpu()}
        if state.rng_state is not None:
            tensors["rng_state"] = state.rng_state.cpu()
        meta = {"chunks_done": state.chunks_done, "frames_done": state.frames_done,
                "steps_done": state.steps_done, "params": state.params}
        save_safetensors(tensors, self.path / STATE_FILE, metadata={METADATA_KEY: json.dumps(meta)})

    # -- reading ---------------------------------------------------------------------------------
    def exists(self) -> bool:
        return (self.path / STATE_FILE).is_file()

    def load_state(self) -> LoopState:
        from safetensors import safe_open

        file = self.path / STATE_FILE
        if not file.is_file():
            raise InputError(f"no resume state at {self.path} (expected {file}); check the path given to resume.")
        try:
            with safe_open(str(file), "pt") as f:
                meta = json.loads((f.metadata() or {})[METADATA_KEY])
                tensors = {k: f.get_tensor(k) for k in f.keys()}
            return LoopState(
                chunks_done=int(meta["chunks_done"]), frames_done=int(meta["frames_done"]),
                cond_frames=tensors["cond_frames"], anchor=tensors["anchor"], params=meta["params"],
                rng_state=tensors.get("rng_state"), steps_done=int(meta.get("steps_done", 0)))
        except Exception as exc:  # noqa: BLE001 - safetensors and json raise their own error types
            raise InputError(f"{file} is not a readable resume state ({type(exc).__name__}: {exc}); "
                             f"start a new run.") from exc

    def iter_frames(self, state: LoopState) -> Iterator[torch.Tensor]:
        """The stored frames chunk by chunk, (n, H, W, 3) float in 0..1, ``state.frames_done`` in all."""
        from safetensors.torch import load_file

        count = 0
        for index in range(state.chunks_done):
            file = self._chunk_file(index)
            if not file.is_file():
                raise InputError(f"the resume state at {self.path} counts {state.chunks_done} chunks but the frames "
                                 f"of chunk {index} ({file.name}) are missing; start a new run.")
            try:
                frames = load_file(str(file))["frames"]
            except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
                raise InputError(f"the frames of chunk {index} in the resume state ({file}) are damaged "
                                 f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'}), "
                                 f"so this run cannot be resumed: delete {self.path} and start a new run.") from exc
            frames = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
            count += frames.shape[0]
            yield frames
        if count != state.frames_done:
            raise InputError(f"the resume state at {self.path} expects {state.frames_done} frames, its chunk files "
                             f"hold {count}; start a new run.")

    def load_frames(self, state: LoopState) -> torch.Tensor:
        return torch.cat(list(self.iter_frames(state)))

    def remove(self) -> None:
        """Delete the folder (after a finished run)."""
        if self.path.is_dir():
            shutil.rmtree(self.path)


def resume_point(path: str | os.PathLike, with_frames: bool = True) -> tuple[LoopState, Optional[torch.Tensor]]:
    """(state, frames so far) of the run saved at ``path``, for ``resume=`` / ``previous_frames=``."""
    folder = RunFolder(path)
    state = folder.load_state()
    return state, folder.load_frames(state) if with_frames else None


def resume_message(frames_done: int, target_frames: int, path: str | os.PathLike) -> str:
    """What a resumed run tells the user (CLI and ComfyUI alike): where it picks up, and from which state."""
    if frames_done >= target_frames:
        return (f"Resumed: the saved run already has {frames_done} frames, no new ones needed for {target_frames} "
                f"(state {Path(path).name})")
    return (f"Resumed from frame {frames_done} (frames 0-{frames_done - 1} from the saved run, "
            f"{target_frames - frames_done} more to make; state {Path(path).name})")
